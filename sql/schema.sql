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

-- @postgres-only
