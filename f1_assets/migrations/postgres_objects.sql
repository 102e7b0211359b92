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
