-- f1-assets warehouse DDL: the one source of table definitions.
--
-- Applied by f1_assets.storage.warehouse on every start of a writer (idempotent: applying it twice is
-- harmless). Everything above the `@postgres-only` marker is the portable subset that the embedded
-- default (DuckDB) applies too; below it are PostgreSQL-only objects (triggers, plpgsql).
--
-- Units: times and durations in milliseconds (suffix _ms), fuel in kg, speed in km/h, throttle in %.
-- Every race-partitioned table carries the partition columns season and round; a partition write
-- replaces exactly the rows of one (season, round) in one transaction.

-- ---------------------------------------------------------------- raw layer: Jolpica (Ergast)
CREATE TABLE IF NOT EXISTS raw_races (
    season          INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    race_name       TEXT NOT NULL,
    circuit_id      TEXT NOT NULL,
    circuit_name    TEXT,
    locality        TEXT,
    country         TEXT,
    lat             DOUBLE PRECISION,
    lng             DOUBLE PRECISION,
    race_date       DATE NOT NULL,
    race_time       TEXT,
    has_sprint      BOOLEAN NOT NULL,
    url             TEXT,
    PRIMARY KEY (season, round)
);

-- raw_results and raw_sprint_results share one shape (a classification)
CREATE TABLE IF NOT EXISTS raw_results (
    season          INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    position_order  INTEGER NOT NULL,   -- 1-based order of the classification, always set
    driver_id       TEXT NOT NULL,
    driver_code     TEXT,
    driver_number   INTEGER,            -- car number raced with
    given_name      TEXT,
    family_name     TEXT,
    constructor_id  TEXT NOT NULL,
    grid            INTEGER,            -- 0 = pit lane start
    position        INTEGER,            -- NULL when not classified
    position_text   TEXT NOT NULL,      -- R retired, D disqualified, W withdrawn, N not classified, E excluded, F failed to qualify
    points          DOUBLE PRECISION NOT NULL,
    laps            INTEGER NOT NULL,
    status          TEXT NOT NULL,
    time_ms         BIGINT,             -- total race time, winner and cars on the lead lap
    fastest_lap     INTEGER,
    fastest_lap_rank INTEGER,
    fastest_lap_time_ms BIGINT,
    PRIMARY KEY (season, round, position_order)
);

CREATE TABLE IF NOT EXISTS raw_sprint_results (
    season          INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    position_order  INTEGER NOT NULL,
    driver_id       TEXT NOT NULL,
    driver_code     TEXT,
    driver_number   INTEGER,
    given_name      TEXT,
    family_name     TEXT,
    constructor_id  TEXT NOT NULL,
    grid            INTEGER,
    position        INTEGER,
    position_text   TEXT NOT NULL,
    points          DOUBLE PRECISION NOT NULL,
    laps            INTEGER NOT NULL,
    status          TEXT NOT NULL,
    time_ms         BIGINT,
    fastest_lap     INTEGER,
    fastest_lap_rank INTEGER,
    fastest_lap_time_ms BIGINT,
    PRIMARY KEY (season, round, position_order)
);

CREATE TABLE IF NOT EXISTS raw_qualifying (
    season          INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    position_order  INTEGER NOT NULL,
    driver_id       TEXT NOT NULL,
    driver_number   INTEGER,
    constructor_id  TEXT NOT NULL,
    position        INTEGER,
    q1_ms           BIGINT,
    q2_ms           BIGINT,
    q3_ms           BIGINT,
    PRIMARY KEY (season, round, position_order)
);

CREATE TABLE IF NOT EXISTS raw_laps (
    season          INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    driver_id       TEXT NOT NULL,
    lap_number      INTEGER NOT NULL,
    position        INTEGER,
    lap_time_ms     BIGINT,
    PRIMARY KEY (season, round, driver_id, lap_number)
);

CREATE TABLE IF NOT EXISTS raw_pit_stops (
    season          INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    driver_id       TEXT NOT NULL,
    stop            INTEGER NOT NULL,
    lap             INTEGER NOT NULL,
    time_of_day     TEXT,               -- local wall-clock time as published (HH:MM:SS)
    duration_ms     BIGINT,             -- pit lane time, entry to exit
    PRIMARY KEY (season, round, driver_id, stop)
);

-- ---------------------------------------------------------------- fastf1
-- FastF1 session laps (2018+), one row per driver-lap; the `fastf1_laps` asset replaces a race's rows
CREATE TABLE IF NOT EXISTS fastf1_laps (
    season          INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    driver_number   INTEGER NOT NULL,
    driver_code     TEXT,
    driver_id       TEXT,               -- Jolpica driverId when known
    lap_number      INTEGER NOT NULL,
    lap_time_ms     BIGINT,
    stint           INTEGER,
    compound        TEXT,               -- as reported, e.g. HYPERSOFT
    compound_std    TEXT,               -- SOFT/MEDIUM/HARD/INTERMEDIATE/WET/UNKNOWN: the weekend's softest/middle/hardest dry compound where derivable
    fresh_tyre      BOOLEAN,
    tyre_life       INTEGER,
    pit_in_time_ms  BIGINT,
    pit_out_time_ms BIGINT,             -- session time
    track_status    TEXT,               -- FastF1's codes string for the lap, e.g. '14'
    is_accurate     BOOLEAN,
    deleted         BOOLEAN,
    PRIMARY KEY (season, round, driver_number, lap_number)
);

-- ---------------------------------------------------------------- operations
-- Shared memory of the Jolpica rate limiter when the warehouse is PostgreSQL: one row per request
-- sent, by every process of every run (the hourly budget holds across a whole backfill).
CREATE TABLE IF NOT EXISTS jolpica_request_log (
    requested_at    DOUBLE PRECISION NOT NULL   -- unix seconds
);
CREATE INDEX IF NOT EXISTS jolpica_request_log_at ON jolpica_request_log (requested_at);

-- ---------------------------------------------------------------- feature layer
-- Built by f1_assets.assets.features from the raw tables (formulas: f1_assets/transforms/features.py).
-- Names and units follow the seed's lap_features (year → season; race_id is the race key 'YYYY-RR').
-- One row per driver-lap of raw_laps; outliers are flagged (is_outlier/outlier_reason), never dropped.
CREATE TABLE IF NOT EXISTS lap_features (
    season          INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    race_id         TEXT NOT NULL,      -- race partition key 'YYYY-RR'
    race_date       DATE,
    circuit_id      TEXT,
    driver_id       TEXT NOT NULL,
    driver_code     TEXT,
    driver_number   INTEGER,
    lap_number      INTEGER NOT NULL,
    lap_time_ms     BIGINT,
    position        INTEGER,            -- running position at the end of the lap
    tire_compound   TEXT NOT NULL,      -- FastF1 compound as reported, else 'UNKNOWN'
    tire_compound_std TEXT NOT NULL,    -- SOFT/MEDIUM/HARD/INTERMEDIATE/WET, else 'UNKNOWN'
    stint           INTEGER,            -- FastF1 stint, else 1 + pit stops before the lap
    tire_age        INTEGER,            -- laps since the stint began (stint's first lap = 1)
    pit_stop        BOOLEAN NOT NULL DEFAULT FALSE,  -- lap is in the pit-stop log (in-lap)
    fuel_remaining  DOUBLE PRECISION,   -- kg, ESTIMATE: 110 * (1 - lap / scheduled laps)
    gap_to_leader_ms BIGINT,            -- cumulative time minus the leader's after the same lap
    delta_to_next_ms BIGINT,            -- cumulative time minus the car one position ahead's
    laps_remaining  INTEGER,            -- scheduled laps - lap_number
    track_status    TEXT,               -- FastF1 codes seen in the lap ('1','2','4','5','6','7'); NULL without FastF1
    safety_car      BOOLEAN,            -- status has 4/5/6/7; NULL without FastF1
    is_outlier      BOOLEAN NOT NULL,
    outlier_reason  TEXT,               -- comma-joined reasons, NULL when not an outlier
    PRIMARY KEY (season, round, driver_id, lap_number)
);
CREATE INDEX IF NOT EXISTS lap_features_race_date ON lap_features (race_date);
CREATE INDEX IF NOT EXISTS lap_features_driver_id ON lap_features (driver_id);

-- One row per (driver, lap) aggregate of the raw telemetry Parquet (the per-sample table of the seed
-- lives in the blob store). Throttle in %, speed in km/h.
CREATE TABLE IF NOT EXISTS telemetry_features (
    season          INTEGER NOT NULL,
    round           INTEGER NOT NULL,
    race_id         TEXT NOT NULL,
    driver_number   INTEGER NOT NULL,
    driver_code     TEXT,
    lap_number      INTEGER NOT NULL,
    throttle_mean   DOUBLE PRECISION,
    throttle_std    DOUBLE PRECISION,
    speed_max       DOUBLE PRECISION,
    speed_mean      DOUBLE PRECISION,
    brake_events    INTEGER NOT NULL,   -- brake off→on transitions within the lap
    drs_open_share  DOUBLE PRECISION,   -- share of samples with DRS code 10/12/14
    sample_count    INTEGER NOT NULL,
    gap_samples     INTEGER NOT NULL,   -- samples with a NULL channel (long gaps)
    interpolated_samples INTEGER NOT NULL,
    PRIMARY KEY (season, round, driver_number, lap_number)
);


-- ---------------------------------------------------------------- ml layer
-- The split views `train`, `validation`, `test` over lap_features are created by the `split_views`
-- asset (f1_assets/assets/ml.py; boundaries are run config), not here.
-- One row per driver seen in the train split; replaced whole (one transaction) by the
-- `driver_profiles` asset, formulas in f1_assets/transforms/profiles.py. A score is NULL when the
-- driver has too little train-split data for it; `null_reason` then says which and why.
CREATE TABLE IF NOT EXISTS driver_profiles (
    driver_id       TEXT PRIMARY KEY,   -- Jolpica driverId
    driver_code     TEXT,
    name            TEXT,
    aggression      DOUBLE PRECISION,   -- on-track passes made / passes expected at the race field's rate (1 = field-typical)
    consistency     DOUBLE PRECISION,   -- field's median lap-to-lap spread / driver's spread, geometric mean over races (1 = field-typical, higher = steadier)
    pressure_response DOUBLE PRECISION, -- share of pressure laps (car behind within the gap) held, minus the race field's share (0 = field-typical)
    tire_management DOUBLE PRECISION,   -- team-mates' degradation minus driver's, ms per lap of tyre age (> 0 = degrades less)
    career_races    INTEGER NOT NULL,   -- train-split races with a classification row
    data_quality    DOUBLE PRECISION,   -- clean laps / laps completed per raw_results, in [0, 1]
    laps_used       INTEGER NOT NULL,   -- clean (non-outlier, timed) train-split laps
    races_used      INTEGER NOT NULL,   -- train-split races with lap data
    first_race_id   TEXT,               -- first and last train-split race of the driver ('YYYY-RR')
    last_race_id    TEXT,
    null_reason     TEXT,               -- '; '-joined '<score>: <reason>' for every NULL score, else NULL
    updated_at      TIMESTAMP WITH TIME ZONE DEFAULT CURRENT_TIMESTAMP
);

-- ---------------------------------------------------------------- audit
-- The seed's pipeline_audit_log: a run_start row and one run_end row (status success or failure) for
-- every run, written by f1_assets/audit.py from inside the run (its executor), by the `f1-assets` CLI
-- and by the run-status sensors. Each writer inserts only if the run has no row of that event_type
-- yet; the unique (dag_run_id, event_type) makes that hold under concurrent writers.
-- Portable differences from the seed: audit_id is supplied by the writer (uuid4: gen_random_uuid()
-- is PostgreSQL-only), metadata is JSON (DuckDB has no JSONB), plus partition_key for the race/season.
-- dag_id = Dagster job, dag_run_id = run id, metadata = {"rows_written": {asset: rows}, ...}.
--
-- Append-only, enforced by PostgreSQL with two roles (set up once by deploy/postgres_roles.sql):
--   admin role   (e.g. f1_admin)   owns pipeline_audit_log, its trigger function and the schema;
--   runtime role (e.g. f1_runtime) runs the pipeline and applies this file at every start; it owns
--                the data tables and has only INSERT and SELECT on pipeline_audit_log, so UPDATE,
--                DELETE, TRUNCATE, DROP TABLE, DROP/DISABLE TRIGGER all fail for it.
-- The owner-only statements below run only when the applying role owns the table, so the runtime
-- role applies this file cleanly. With a single role (the owner) the triggers still refuse UPDATE,
-- DELETE and TRUNCATE, but that role could drop them: use two roles in production.
-- The embedded DuckDB default has no roles and no triggers: there the table is append-only by
-- convention only (the pipeline never updates or deletes it).
CREATE TABLE IF NOT EXISTS pipeline_audit_log (
    audit_id        UUID PRIMARY KEY,
    timestamp       TIMESTAMPTZ NOT NULL DEFAULT CURRENT_TIMESTAMP,
    dag_id          VARCHAR(128) NOT NULL,
    dag_run_id      VARCHAR(256) NOT NULL,
    task_id         VARCHAR(128),
    partition_key   VARCHAR(64),
    event_type      VARCHAR(64) NOT NULL,   -- run_start, run_end
    actor           VARCHAR(256),           -- sensor:<name>, schedule:<name>, backfill:<id>, user:<name>, cli:<host>, manual
    resource        VARCHAR(512),           -- assets written, comma-joined
    action          VARCHAR(32),            -- run, write
    status          VARCHAR(32),            -- started, success, failure
    metadata        JSON,
    git_commit_sha  VARCHAR(64),
    container_image_digest VARCHAR(128),
    CONSTRAINT pipeline_audit_log_one_per_run UNIQUE (dag_run_id, event_type)
);

-- @postgres-only

DO $audit$
BEGIN
    -- owner-only DDL (indexes, the unique constraint on tables made before it, triggers): skipped by
    -- the runtime role, which does not own the table and may not change it
    IF NOT pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = 'pipeline_audit_log'::regclass),
                       'USAGE') THEN
        RETURN;
    END IF;

    CREATE INDEX IF NOT EXISTS pipeline_audit_log_dag ON pipeline_audit_log (dag_id, task_id);
    CREATE INDEX IF NOT EXISTS pipeline_audit_log_timestamp ON pipeline_audit_log (timestamp);
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = 'pipeline_audit_log'::regclass
                   AND conname = 'pipeline_audit_log_one_per_run') THEN
        BEGIN
            ALTER TABLE pipeline_audit_log
                ADD CONSTRAINT pipeline_audit_log_one_per_run UNIQUE (dag_run_id, event_type);
        EXCEPTION WHEN unique_violation THEN
            RAISE WARNING 'pipeline_audit_log holds more than one row of an event_type for a run; '
                          'writers still insert only when absent, but without the database guarantee';
        END;
    END IF;

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
