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

-- ---------------------------------------------------------------- operations
-- Shared memory of the Jolpica rate limiter when the warehouse is PostgreSQL: one row per request
-- sent, by every process of every run (the hourly budget holds across a whole backfill).
CREATE TABLE IF NOT EXISTS jolpica_request_log (
    requested_at    DOUBLE PRECISION NOT NULL   -- unix seconds
);
CREATE INDEX IF NOT EXISTS jolpica_request_log_at ON jolpica_request_log (requested_at);

-- @postgres-only
