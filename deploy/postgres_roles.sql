-- One-time PostgreSQL setup of the warehouse's two roles (why: f1_assets/migrations/postgres_objects.sql).
--
--   psql "$ADMIN_URL" -v ON_ERROR_STOP=1 -v schema=f1 -v admin=f1_admin -v runtime=f1_runtime \
--        -f deploy/postgres_roles.sql
--
-- admin   owns the schema, pipeline_audit_log and its trigger function; nothing runs as it day to day.
-- runtime is the pipeline's LOGIN role (the user of F1_WAREHOUSE_URL, schema in its search_path, e.g.
--         `?options=-csearch_path%3Df1`); it owns the data tables and may only INSERT into and
--         SELECT from pipeline_audit_log.
-- Both roles must exist (Cloud SQL: create the users in the console or with `gcloud sql users create`),
-- and the user of ADMIN_URL must be a superuser or a member of both (Cloud SQL's `postgres` user is a
-- member of the users it creates). Safe to run again: it re-asserts the same ownership and grants.
-- sql/schema.sql (generated: `f1-assets migrate --print-sql`) makes an empty schema at the current
-- version; the pipeline (runtime role) applies later migrations itself, once, at its first start
-- (`f1-assets migrate` does it on demand). On a schema made by an older release it only adds what is
-- missing and leaves the upgrade to those migrations.

CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"admin";
GRANT USAGE, CREATE ON SCHEMA :"schema" TO :"runtime";
SET search_path = :"schema";

-- the tables and the schema version, made by the runtime role exactly as the pipeline makes them
SET ROLE :"runtime";
\ir ../sql/schema.sql
RESET ROLE;

-- the audit log belongs to the admin; the runtime role keeps INSERT and SELECT only
ALTER TABLE pipeline_audit_log OWNER TO :"admin";
ALTER FUNCTION pipeline_audit_log_append_only() OWNER TO :"admin";
REVOKE ALL ON pipeline_audit_log FROM :"runtime";
GRANT INSERT, SELECT ON pipeline_audit_log TO :"runtime";

-- once more as the owner's side: the owner-only part (indexes, unique constraint, append-only triggers)
\ir ../sql/schema.sql
