-- GENERATED from f1_assets/tables (the table declarations) and f1_assets/migrations: do not edit.
-- Regenerate with `f1-assets migrate --print-sql > sql/schema.sql`; a test fails when it differs.
--
-- The schema of an empty warehouse at version 0006, as the pipeline creates it at its first start
-- (and as deploy/postgres_roles.sql makes it with psql). A warehouse that already holds tables is
-- upgraded in place by the versioned migrations instead (`f1-assets migrate`): this script records
-- a version only when it finds no table, so applying it to an older warehouse leaves that to them.
-- Above the `@postgres-only` marker is the portable part that DuckDB (the embedded default) applies.
--
-- Units: times and durations in milliseconds (suffix _ms), fuel in kg, speed in km/h, throttle in %.
-- Every race-partitioned table carries the partition columns season and round; a partition write
-- replaces exactly the rows of one (season, round) in one transaction.

-- the schema version (Alembic's table), recorded only in a warehouse with no table yet
CREATE TABLE IF NOT EXISTS alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
INSERT INTO alembic_version (version_num) SELECT '0006'
WHERE NOT EXISTS (SELECT 1 FROM alembic_version)
  AND NOT EXISTS (SELECT 1 FROM information_schema.tables
                  WHERE table_schema = current_schema() AND table_name = 'raw_races');

-- raw_races: The season calendar: one row per race of a season's schedule (Jolpica `/{season}`).
CREATE TABLE IF NOT EXISTS raw_races (
    season       INTEGER NOT NULL,
    round        INTEGER NOT NULL,
    race_name    TEXT NOT NULL,
    circuit_id   TEXT NOT NULL,
    circuit_name TEXT,
    locality     TEXT,
    country      TEXT,
    lat          DOUBLE PRECISION,
    lng          DOUBLE PRECISION,
    race_date    DATE NOT NULL,
    race_time    TEXT,
    has_sprint   BOOLEAN NOT NULL,
    url          TEXT,
    PRIMARY KEY (season, round)
);

-- raw_results: The race classification of a race: one row per entry, in classification order.
CREATE TABLE IF NOT EXISTS raw_results (
    season              INTEGER NOT NULL,
    round               INTEGER NOT NULL,
    position_order      INTEGER NOT NULL,
    driver_id           TEXT NOT NULL,
    driver_code         TEXT,
    driver_number       INTEGER,
    given_name          TEXT,
    family_name         TEXT,
    constructor_id      TEXT NOT NULL,
    grid                INTEGER,
    position            INTEGER,
    position_text       TEXT NOT NULL,
    points              DOUBLE PRECISION NOT NULL,
    laps                INTEGER NOT NULL,
    status              TEXT NOT NULL,
    time_ms             BIGINT,
    fastest_lap         INTEGER,
    fastest_lap_rank    INTEGER,
    fastest_lap_time_ms BIGINT,
    PRIMARY KEY (season, round, position_order)
);

-- raw_sprint_results: The sprint classification of a race: one row per entry, in classification order.
CREATE TABLE IF NOT EXISTS raw_sprint_results (
    season              INTEGER NOT NULL,
    round               INTEGER NOT NULL,
    position_order      INTEGER NOT NULL,
    driver_id           TEXT NOT NULL,
    driver_code         TEXT,
    driver_number       INTEGER,
    given_name          TEXT,
    family_name         TEXT,
    constructor_id      TEXT NOT NULL,
    grid                INTEGER,
    position            INTEGER,
    position_text       TEXT NOT NULL,
    points              DOUBLE PRECISION NOT NULL,
    laps                INTEGER NOT NULL,
    status              TEXT NOT NULL,
    time_ms             BIGINT,
    fastest_lap         INTEGER,
    fastest_lap_rank    INTEGER,
    fastest_lap_time_ms BIGINT,
    PRIMARY KEY (season, round, position_order)
);

-- raw_qualifying: Qualifying of a race: one row per entry, in classification order, with Q1/Q2/Q3 times.
CREATE TABLE IF NOT EXISTS raw_qualifying (
    season         INTEGER NOT NULL,
    round          INTEGER NOT NULL,
    position_order INTEGER NOT NULL,
    driver_id      TEXT NOT NULL,
    driver_number  INTEGER,
    constructor_id TEXT NOT NULL,
    position       INTEGER,
    q1_ms          BIGINT,
    q2_ms          BIGINT,
    q3_ms          BIGINT,
    PRIMARY KEY (season, round, position_order)
);

-- raw_laps: Lap timings of a race: one row per driver-lap (pages merged by driver and lap).
CREATE TABLE IF NOT EXISTS raw_laps (
    season      INTEGER NOT NULL,
    round       INTEGER NOT NULL,
    driver_id   TEXT NOT NULL,
    lap_number  INTEGER NOT NULL,
    position    INTEGER,
    lap_time_ms BIGINT,
    PRIMARY KEY (season, round, driver_id, lap_number)
);

-- raw_pit_stops: Pit stops of a race: one row per stop.
CREATE TABLE IF NOT EXISTS raw_pit_stops (
    season      INTEGER NOT NULL,
    round       INTEGER NOT NULL,
    driver_id   TEXT NOT NULL,
    stop        INTEGER NOT NULL,
    lap         INTEGER NOT NULL,
    time_of_day TEXT,
    duration_ms BIGINT,
    PRIMARY KEY (season, round, driver_id, stop)
);

-- raw_driver_standings: Drivers' championship after a round (Jolpica `/{season}/{round}/driverStandings`):
-- one row per classified driver.
CREATE TABLE IF NOT EXISTS raw_driver_standings (
    season          INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    driver_id       TEXT NOT NULL,
    position        INTEGER,
    position_text   TEXT NOT NULL,
    points          DOUBLE PRECISION NOT NULL,
    wins            INTEGER NOT NULL,
    constructor_ids TEXT,
    PRIMARY KEY (season, round, driver_id)
);

-- raw_constructor_standings: Constructors' championship after a round (Jolpica
-- `/{season}/{round}/constructorStandings`; held from 1958): one row per constructor.
CREATE TABLE IF NOT EXISTS raw_constructor_standings (
    season         INTEGER NOT NULL,
    round          INTEGER NOT NULL,
    constructor_id TEXT NOT NULL,
    position       INTEGER,
    position_text  TEXT NOT NULL,
    points         DOUBLE PRECISION NOT NULL,
    wins           INTEGER NOT NULL,
    PRIMARY KEY (season, round, constructor_id)
);

-- fastf1_laps: FastF1 session laps of a race: one row per driver-lap (stints, tyres, track status,
-- sectors).
CREATE TABLE IF NOT EXISTS fastf1_laps (
    season             INTEGER NOT NULL,
    round              INTEGER NOT NULL,
    driver_number      INTEGER NOT NULL,
    driver_code        TEXT,
    driver_id          TEXT,
    lap_number         INTEGER NOT NULL,
    lap_time_ms        BIGINT,
    stint              INTEGER,
    compound           TEXT,
    compound_std       TEXT,
    fresh_tyre         BOOLEAN,
    tyre_life          INTEGER,
    pit_in_time_ms     BIGINT,
    pit_out_time_ms    BIGINT,
    track_status       TEXT,
    is_accurate        BOOLEAN,
    deleted            BOOLEAN,
    sector1_time_ms    BIGINT,
    sector2_time_ms    BIGINT,
    sector3_time_ms    BIGINT,
    air_temp_c         DOUBLE PRECISION,
    track_temp_c       DOUBLE PRECISION,
    humidity_pct       DOUBLE PRECISION,
    pressure_mbar      DOUBLE PRECISION,
    wind_speed_mps     DOUBLE PRECISION,
    wind_direction_deg DOUBLE PRECISION,
    rainfall           BOOLEAN,
    PRIMARY KEY (season, round, driver_number, lap_number)
);

-- lap_features: One row per driver-lap of raw_laps, with tyre, pit, fuel, gap and track-status features and
-- outlier flags (outliers are flagged, never dropped).
CREATE TABLE IF NOT EXISTS lap_features (
    season            INTEGER NOT NULL,
    round             INTEGER NOT NULL,
    race_id           TEXT NOT NULL,
    race_date         DATE,
    circuit_id        TEXT,
    driver_id         TEXT NOT NULL,
    driver_code       TEXT,
    driver_number     INTEGER,
    lap_number        INTEGER NOT NULL,
    lap_time_ms       BIGINT,
    position          INTEGER,
    tire_compound     TEXT NOT NULL,
    tire_compound_std TEXT NOT NULL,
    stint             INTEGER,
    tire_age          INTEGER,
    pit_stop          BOOLEAN NOT NULL DEFAULT FALSE,
    fuel_remaining    DOUBLE PRECISION,
    gap_to_leader_ms  BIGINT,
    delta_to_next_ms  BIGINT,
    laps_remaining    INTEGER,
    track_status      TEXT,
    safety_car        BOOLEAN,
    is_outlier        BOOLEAN NOT NULL,
    outlier_reason    TEXT,
    sector1_ms        BIGINT,
    sector2_ms        BIGINT,
    sector3_ms        BIGINT,
    air_temp_c        DOUBLE PRECISION,
    track_temp_c      DOUBLE PRECISION,
    humidity_pct      DOUBLE PRECISION,
    rainfall          BOOLEAN,
    weather           TEXT,
    race_weather      TEXT,
    era               TEXT NOT NULL,
    PRIMARY KEY (season, round, driver_id, lap_number)
);
CREATE INDEX IF NOT EXISTS lap_features_race_date ON lap_features (race_date);
CREATE INDEX IF NOT EXISTS lap_features_driver_id ON lap_features (driver_id);

-- telemetry_features: One row per (driver, lap) aggregate of the raw telemetry Parquet (the per-sample
-- table lives in the blob store).
CREATE TABLE IF NOT EXISTS telemetry_features (
    season               INTEGER NOT NULL,
    round                INTEGER NOT NULL,
    race_id              TEXT NOT NULL,
    driver_number        INTEGER NOT NULL,
    driver_code          TEXT,
    lap_number           INTEGER NOT NULL,
    throttle_mean        DOUBLE PRECISION,
    throttle_std         DOUBLE PRECISION,
    speed_max            DOUBLE PRECISION,
    speed_mean           DOUBLE PRECISION,
    brake_events         INTEGER NOT NULL,
    drs_open_share       DOUBLE PRECISION,
    sample_count         INTEGER NOT NULL,
    gap_samples          INTEGER NOT NULL,
    interpolated_samples INTEGER NOT NULL,
    lap_distance_m       DOUBLE PRECISION,
    max_lateral_g        DOUBLE PRECISION,
    max_braking_g        DOUBLE PRECISION,
    max_accel_g          DOUBLE PRECISION,
    g_over_limit_samples INTEGER,
    corners_passed       INTEGER,
    slowest_corner       INTEGER,
    min_corner_speed_kmh DOUBLE PRECISION,
    PRIMARY KEY (season, round, driver_number, lap_number)
);

-- driver_profiles: One row per driver seen in the train split; replaced whole. A score is NULL when the
-- driver has too little train-split data for it, and null_reason says which and why.
CREATE TABLE IF NOT EXISTS driver_profiles (
    driver_id         TEXT NOT NULL,
    driver_code       TEXT,
    name              TEXT,
    aggression        DOUBLE PRECISION,
    consistency       DOUBLE PRECISION,
    pressure_response DOUBLE PRECISION,
    tire_management   DOUBLE PRECISION,
    career_races      INTEGER NOT NULL,
    data_quality      DOUBLE PRECISION,
    laps_used         INTEGER NOT NULL,
    races_used        INTEGER NOT NULL,
    first_race_id     TEXT,
    last_race_id      TEXT,
    null_reason       TEXT,
    updated_at        TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (driver_id)
);

-- era_statistics: Per regulation era and telemetry feature: n, mean and sample std of the train split's
-- telemetry_features (the statistics of per-era standardisation, f1_assets/transforms/eras.py); replaced
-- whole. Every era of the era table has a row per feature; NULL mean/std with null_reason where the train
-- split gives too little.
CREATE TABLE IF NOT EXISTS era_statistics (
    era          TEXT NOT NULL,
    feature      TEXT NOT NULL,
    n            INTEGER NOT NULL,
    mean         DOUBLE PRECISION,
    std          DOUBLE PRECISION,
    train_races  INTEGER NOT NULL,
    first_season INTEGER,
    last_season  INTEGER,
    null_reason  TEXT,
    computed_at  TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (era, feature)
);

-- circuit_versions: Circuit layouts told apart by lap length (f1_assets/transforms/eras.py): per race the
-- median telemetry lap distance; a race more than eras.LAYOUT_CHANGE_PCT away from the current version's
-- median starts a new version. Telemetry only (2018+): earlier races have no version (Jolpica's circuit
-- table has no length). All races with telemetry, not the train split only: a layout is a property of the
-- track, not a learned statistic. Replaced whole.
CREATE TABLE IF NOT EXISTS circuit_versions (
    circuit_id            TEXT NOT NULL,
    version_id            TEXT NOT NULL,
    first_season          INTEGER NOT NULL,
    first_round           INTEGER NOT NULL,
    last_season           INTEGER NOT NULL,
    last_round            INTEGER NOT NULL,
    median_lap_distance_m DOUBLE PRECISION,
    change_pct            DOUBLE PRECISION,
    races                 INTEGER NOT NULL,
    laps                  INTEGER NOT NULL,
    PRIMARY KEY (version_id)
);

-- jolpica_request_log: Shared memory of the Jolpica rate limiter when the warehouse is PostgreSQL: one row
-- per request sent, by every process of every run (the hourly budget holds across a whole backfill).
CREATE TABLE IF NOT EXISTS jolpica_request_log (
    requested_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS jolpica_request_log_requested_at ON jolpica_request_log (requested_at);

-- pipeline_audit_log: A run_start and a run_end row for every run, however launched (append-only).
CREATE TABLE IF NOT EXISTS pipeline_audit_log (
    audit_id               UUID NOT NULL,
    timestamp              TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    dag_id                 VARCHAR(128) NOT NULL,
    dag_run_id             VARCHAR(256) NOT NULL,
    task_id                VARCHAR(128),
    partition_key          VARCHAR(64),
    event_type             VARCHAR(64) NOT NULL,
    actor                  VARCHAR(256),
    resource               VARCHAR(512),
    action                 VARCHAR(32),
    status                 VARCHAR(32),
    metadata               JSON,
    git_commit_sha         VARCHAR(64),
    container_image_digest VARCHAR(128),
    PRIMARY KEY (audit_id),
    UNIQUE (dag_run_id, event_type)
);

-- @postgres-only

-- PostgreSQL-only objects of the schema: pipeline_audit_log is append-only in the database itself.
--
-- Two roles (set up once by deploy/postgres_roles.sql):
--   admin role   (e.g. f1_admin)   owns pipeline_audit_log, its trigger function and the schema;
--   runtime role (e.g. f1_runtime) runs the pipeline and its migrations; it owns the data tables and
--                has only INSERT and SELECT on pipeline_audit_log, so UPDATE, DELETE, TRUNCATE,
--                DROP TABLE, DROP/DISABLE TRIGGER all fail for it.
-- The owner-only statements below run only when the applying role owns the table, so the runtime role
-- applies this cleanly. With a single role (the owner) the triggers still refuse UPDATE, DELETE and
-- TRUNCATE, but that role could drop them: use two roles in production.
-- The embedded DuckDB default has no roles and no triggers: there the table is append-only by
-- convention only (the pipeline never updates or deletes it).
DO $audit$
BEGIN
    IF NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'pipeline_audit_log'::regclass),
                       'USAGE') THEN
        RETURN;
    END IF;

    CREATE INDEX IF NOT EXISTS pipeline_audit_log_dag ON pipeline_audit_log (dag_id, task_id);
    CREATE INDEX IF NOT EXISTS pipeline_audit_log_timestamp ON pipeline_audit_log (timestamp);

    -- UPDATE, DELETE and TRUNCATE fail in the database itself, even for the owner
    CREATE OR REPLACE FUNCTION pipeline_audit_log_append_only() RETURNS trigger
    LANGUAGE plpgsql AS $fn$
    BEGIN
        RAISE EXCEPTION 'pipeline_audit_log is append-only: % is not allowed', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END;
    $fn$;
    DROP TRIGGER IF EXISTS pipeline_audit_log_no_update_delete ON pipeline_audit_log;
    CREATE TRIGGER pipeline_audit_log_no_update_delete
        BEFORE UPDATE OR DELETE ON pipeline_audit_log
        FOR EACH ROW EXECUTE FUNCTION pipeline_audit_log_append_only();
    DROP TRIGGER IF EXISTS pipeline_audit_log_no_truncate ON pipeline_audit_log;
    CREATE TRIGGER pipeline_audit_log_no_truncate
        BEFORE TRUNCATE ON pipeline_audit_log
        FOR EACH STATEMENT EXECUTE FUNCTION pipeline_audit_log_append_only();
END
$audit$;
