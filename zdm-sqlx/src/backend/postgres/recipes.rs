//! PostgreSQL's expand/contract recipes, installed as SQL functions next to zdm's tables
//! so SQL-file and Rust migrations share one implementation: batched backfills
//! (`zdm_backfill`), renaming a column (`zdm_rename_column`) or a table
//! (`zdm_rename_table`), and changing a column's type (`zdm_change_column_type_begin` /
//! `_finish`). Each must run inside a migration zdm applies (it reads the migration's
//! version). Every name they write into SQL goes through `format('%I')`; names they derive
//! are cut to 63 bytes at a character boundary, as PostgreSQL cuts them.
//!
//! Each is idempotent: called again with the same arguments (a `no_transaction` file
//! re-run after a later statement failed, a Rust migration run again), it finds its own
//! work, finishes what is missing and adds nothing twice (no second column, trigger,
//! backfill or drop).

use crate::names::Names;

const CREATE: &str = r#"
CREATE TABLE IF NOT EXISTS {obj:backfills} (
    name         TEXT PRIMARY KEY,
    schema_name  TEXT NOT NULL,
    table_name   TEXT NOT NULL,
    key_column   TEXT NOT NULL,
    set_sql      TEXT NOT NULL,
    where_sql    TEXT,
    scheduled_by BIGINT NOT NULL,
    scheduled_at TIMESTAMPTZ NOT NULL,
    last_key     BIGINT,
    rows_done    BIGINT NOT NULL DEFAULT 0,
    batches      BIGINT NOT NULL DEFAULT 0,
    batch_size   BIGINT NOT NULL DEFAULT 1000,
    max_batch_ms BIGINT NOT NULL DEFAULT 0,
    started_at   TIMESTAMPTZ,
    updated_at   TIMESTAMPTZ,
    finished_at  TIMESTAMPTZ
);

CREATE OR REPLACE FUNCTION {obj:migration_version}() RETURNS bigint LANGUAGE plpgsql AS $zdm$
DECLARE
    v bigint := nullif(current_setting('zdm.migration_version', true), '')::bigint;
BEGIN
    IF v IS NULL THEN
        RAISE EXCEPTION 'zdm''s recipes must run inside a migration that zdm applies'
            USING HINT = 'call them from a migration file or a #[zdm::migration] function';
    END IF;
    RETURN v;
END
$zdm$;

-- An identifier as PostgreSQL keeps it: at most 63 bytes, cut at a character boundary.
CREATE OR REPLACE FUNCTION {obj:clip_name}(p_name text) RETURNS text LANGUAGE plpgsql IMMUTABLE AS $zdm$
DECLARE
    v text := left(p_name, 63);
BEGIN
    WHILE octet_length(v) > 63 LOOP
        v := left(v, -1);
    END LOOP;
    RETURN v;
END
$zdm$;

-- The row trigger `p_name` running function `p_schema.p_name()` before inserts and updates,
-- unless the table has it already.
CREATE OR REPLACE FUNCTION {obj:ensure_trigger}(p_rel regclass, p_schema text, p_table text, p_name text)
RETURNS void LANGUAGE plpgsql AS $zdm$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = p_rel AND tgname = p_name) THEN
        EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE ON %I.%I FOR EACH ROW EXECUTE PROCEDURE %I.%I()',
                       p_name, p_schema, p_table, p_schema, p_name);
    END IF;
END
$zdm$;

-- The type of a live column, or NULL.
CREATE OR REPLACE FUNCTION {obj:column_type}(p_rel regclass, p_column text) RETURNS text
LANGUAGE sql STABLE AS $zdm$
    SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a
    WHERE a.attrelid = p_rel AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped
$zdm$;

CREATE OR REPLACE FUNCTION {obj:backfill}(p_name text, p_table text, p_set text, p_where text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $zdm$
DECLARE
    v_version bigint := {obj:migration_version}();
    v_rel regclass := p_table::regclass;
    v_schema text;
    v_table text;
    v_key text;
BEGIN
    SELECT r.schema_name, r.table_name INTO v_schema, v_table FROM {obj:relation}(v_rel) r;
    SELECT a.attname INTO v_key
    FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
    WHERE i.indrelid = v_rel AND i.indisprimary AND i.indnkeyatts = 1
      AND a.atttypid IN ('int2'::regtype, 'int4'::regtype, 'int8'::regtype);
    IF v_key IS NULL THEN
        RAISE EXCEPTION 'backfill %: table % needs a single-column integer primary key to be walked in batches', p_name, p_table;
    END IF;
    -- Fail now, in the migration, rather than in the first batch.
    EXECUTE format('EXPLAIN UPDATE %I.%I SET %s WHERE false%s', v_schema, v_table, p_set,
                   coalesce(' AND (' || p_where || ')', ''));
    INSERT INTO {obj:backfills} (name, schema_name, table_name, key_column, set_sql, where_sql, scheduled_by, scheduled_at)
    VALUES (p_name, v_schema, v_table, v_key, p_set, p_where, v_version, clock_timestamp())
    ON CONFLICT (name) DO NOTHING;
END
$zdm$;

CREATE OR REPLACE FUNCTION {obj:rename_column}(p_table text, p_old text, p_new text)
RETURNS void LANGUAGE plpgsql AS $zdm$
DECLARE
    v_version bigint := {obj:migration_version}();
    v_rel regclass := p_table::regclass;
    v_schema text;
    v_table text;
    v_type text := {obj:column_type}(v_rel, p_old);
    v_new_type text := {obj:column_type}(v_rel, p_new);
    v_fn text;
BEGIN
    SELECT r.schema_name, r.table_name INTO v_schema, v_table FROM {obj:relation}(v_rel) r;
    v_fn := {obj:clip_name}('{prefix}sync_' || v_table || '_' || p_new);
    IF v_type IS NULL THEN
        IF v_new_type IS NOT NULL THEN
            RAISE NOTICE 'rename_column: %.% has % and no longer %: renamed already', v_schema, v_table, p_new, p_old;
            RETURN;
        END IF;
        RAISE EXCEPTION 'rename_column: table % has no column %', p_table, p_old;
    END IF;
    IF v_new_type IS NULL THEN
        EXECUTE format('ALTER TABLE %I.%I ADD COLUMN %I %s', v_schema, v_table, p_new, v_type);
    ELSIF v_new_type <> v_type THEN
        RAISE EXCEPTION 'rename_column: %.% already has a column % of type %, not % like %',
                        v_schema, v_table, p_new, v_new_type, v_type, p_old;
    END IF;
    -- Both builds run: whichever half a statement writes, the other follows.
    -- The body is quoted as a literal (%L), not dollar-quoted: a column may be named `$b$`.
    EXECUTE format('CREATE OR REPLACE FUNCTION %I.%I() RETURNS trigger LANGUAGE plpgsql AS %L', v_schema, v_fn,
        format($f$
        BEGIN
            IF TG_OP = 'INSERT' THEN
                IF NEW.%I IS NULL THEN NEW.%I := NEW.%I; ELSE NEW.%I := NEW.%I; END IF;
            ELSIF NEW.%I IS DISTINCT FROM OLD.%I THEN
                NEW.%I := NEW.%I;
            ELSIF NEW.%I IS DISTINCT FROM OLD.%I THEN
                NEW.%I := NEW.%I;
            END IF;
            RETURN NEW;
        END $f$,
        p_new, p_new, p_old, p_old, p_new,
        p_new, p_new, p_old, p_new,
        p_old, p_old, p_new, p_old));
    PERFORM {obj:ensure_trigger}(v_rel, v_schema, v_table, v_fn);
    PERFORM {obj:backfill}(format('rename %s.%s.%s to %s', v_schema, v_table, p_old, p_new), p_table,
                           format('%I = %I', p_new, p_old), format('%I IS DISTINCT FROM %I', p_new, p_old));
    PERFORM {fn_drop_column}(p_table, p_old);
    -- CASCADE takes the sync trigger with it, whatever the table is called by then.
    UPDATE {drops} SET before_drop = format('DROP FUNCTION IF EXISTS %I.%I() CASCADE', v_schema, v_fn)
    WHERE schema_name = v_schema AND table_name = v_table AND column_name = p_old AND state = 'pending';
END
$zdm$;

CREATE OR REPLACE FUNCTION {obj:rename_table}(p_old text, p_new text)
RETURNS void LANGUAGE plpgsql AS $zdm$
DECLARE
    v_version bigint := {obj:migration_version}();
    v_rel regclass := to_regclass(p_old);
    v_schema text;
    v_table text;
    v_parts text[];
    v_col record;
BEGIN
    IF v_rel IS NULL THEN
        -- Renamed by an earlier call, and the view is gone too: nothing left to do.
        v_parts := parse_ident(p_old);
        IF to_regclass(CASE WHEN cardinality(v_parts) > 1
                            THEN format('%I.%I', v_parts[cardinality(v_parts) - 1], p_new)
                            ELSE format('%I', p_new) END) IS NOT NULL THEN
            RAISE NOTICE 'rename_table: % no longer exists and % does: renamed already', p_old, p_new;
            RETURN;
        END IF;
        v_rel := p_old::regclass;
    END IF;
    SELECT r.schema_name, r.table_name INTO v_schema, v_table FROM {obj:relation}(v_rel) r;
    IF (SELECT c.relkind FROM pg_class c WHERE c.oid = v_rel) = 'v'
       AND to_regclass(format('%I.%I', v_schema, p_new)) IS NOT NULL
       AND EXISTS (SELECT 1 FROM {drops} d WHERE d.schema_name = v_schema AND d.table_name = v_table
                   AND d.column_name IS NULL AND d.is_view) THEN
        -- An earlier call renamed the table and left this view, whose drop it scheduled.
        RAISE NOTICE 'rename_table: %.% is the view an earlier rename to % left: renamed already',
                     v_schema, v_table, p_new;
        RETURN;
    END IF;
    EXECUTE format('ALTER TABLE %I.%I RENAME TO %I', v_schema, v_table, p_new);
    -- Pending drops of its columns follow the table to its new name.
    UPDATE {drops} SET table_name = p_new
    WHERE schema_name = v_schema AND table_name = v_table AND column_name IS NOT NULL AND state = 'pending';
    -- The old name stays as a simple, hence updatable, view until no old build is live.
    EXECUTE format('CREATE VIEW %I.%I AS SELECT * FROM %I.%I', v_schema, v_table, v_schema, p_new);
    -- A view's columns have no defaults of their own: give it the table's.
    FOR v_col IN SELECT a.attname, pg_get_expr(d.adbin, d.adrelid) AS expr
                 FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum
                 WHERE d.adrelid = v_rel AND a.attgenerated = '' LOOP
        EXECUTE format('ALTER VIEW %I.%I ALTER COLUMN %I SET DEFAULT %s', v_schema, v_table, v_col.attname, v_col.expr);
    END LOOP;
    PERFORM {obj:schedule_drop}(v_schema, v_table, NULL, v_version, interval '0', true);
END
$zdm$;

CREATE OR REPLACE FUNCTION {obj:change_column_type_begin}(p_table text, p_column text, p_type text)
RETURNS void LANGUAGE plpgsql AS $zdm$
DECLARE
    v_version bigint := {obj:migration_version}();
    v_rel regclass := p_table::regclass;
    v_schema text;
    v_table text;
    v_shadow text := {obj:clip_name}(p_column || '_zdm_new');
    v_have oid;
    v_fn text;
BEGIN
    SELECT r.schema_name, r.table_name INTO v_schema, v_table FROM {obj:relation}(v_rel) r;
    v_fn := {obj:clip_name}('{prefix}cast_' || v_table || '_' || p_column);
    IF {obj:column_type}(v_rel, p_column) IS NULL THEN
        RAISE EXCEPTION 'change_column_type_begin: table % has no column %', p_table, p_column;
    END IF;
    SELECT a.atttypid INTO v_have FROM pg_attribute a
    WHERE a.attrelid = v_rel AND a.attname = v_shadow AND a.attnum > 0 AND NOT a.attisdropped;
    IF v_have IS NULL THEN
        EXECUTE format('ALTER TABLE %I.%I ADD COLUMN %I %s', v_schema, v_table, v_shadow, p_type);
    ELSIF v_have <> p_type::regtype THEN
        RAISE EXCEPTION 'change_column_type_begin: %.% already has a column % of type %, not %',
                        v_schema, v_table, v_shadow, v_have::regtype, p_type;
    END IF;
    -- Every build writes the column as it is; the shadow follows it.
    EXECUTE format('CREATE OR REPLACE FUNCTION %I.%I() RETURNS trigger LANGUAGE plpgsql AS %L', v_schema, v_fn,
        format('BEGIN NEW.%I := NEW.%I::%s; RETURN NEW; END', v_shadow, p_column, p_type));
    PERFORM {obj:ensure_trigger}(v_rel, v_schema, v_table, v_fn);
    PERFORM {obj:backfill}(format('retype %s.%s.%s', v_schema, v_table, p_column), p_table,
                           format('%I = %I::%s', v_shadow, p_column, p_type),
                           format('%I IS DISTINCT FROM %I::%s', v_shadow, p_column, p_type));
END
$zdm$;

CREATE OR REPLACE FUNCTION {obj:change_column_type_finish}(p_table text, p_column text)
RETURNS void LANGUAGE plpgsql AS $zdm$
DECLARE
    v_version bigint := {obj:migration_version}();
    v_rel regclass := p_table::regclass;
    v_schema text;
    v_table text;
    v_shadow text := {obj:clip_name}(p_column || '_zdm_new');
    v_old text := {obj:clip_name}(p_column || '_zdm_old');
    v_fn text;
    v_left bigint;
BEGIN
    SELECT r.schema_name, r.table_name INTO v_schema, v_table FROM {obj:relation}(v_rel) r;
    v_fn := {obj:clip_name}('{prefix}cast_' || v_table || '_' || p_column);
    IF {obj:column_type}(v_rel, v_shadow) IS NULL THEN
        IF {obj:column_type}(v_rel, v_old) IS NOT NULL THEN
            -- Swapped by an earlier call: make sure the old column's drop is scheduled.
            RAISE NOTICE 'change_column_type_finish: %.%.% swapped already', v_schema, v_table, p_column;
            PERFORM {fn_drop_column}(p_table, v_old);
            RETURN;
        END IF;
        RAISE EXCEPTION 'change_column_type_finish(%, %): there is no column % to swap in', p_table, p_column, v_shadow
            USING HINT = 'call change_column_type_begin in an earlier (pre-deploy) migration';
    END IF;
    SELECT count(*) INTO v_left FROM {obj:backfills}
    WHERE schema_name = v_schema AND table_name = v_table AND finished_at IS NULL
      AND name = format('retype %s.%s.%s', v_schema, v_table, p_column);
    IF v_left > 0 THEN
        RAISE EXCEPTION 'change_column_type_finish(%, %): its backfill has not finished', p_table, p_column
            USING HINT = 'run it from an after_deploy migration: run_post waits for the backfill';
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %I.%I', v_fn, v_schema, v_table);
    EXECUTE format('DROP FUNCTION IF EXISTS %I.%I()', v_schema, v_fn);
    EXECUTE format('ALTER TABLE %I.%I RENAME COLUMN %I TO %I', v_schema, v_table, p_column, v_old);
    EXECUTE format('ALTER TABLE %I.%I RENAME COLUMN %I TO %I', v_schema, v_table, v_shadow, p_column);
    PERFORM {fn_drop_column}(p_table, v_old);
END
$zdm$;
"#;

/// Bumped whenever the SQL of zdm's functions or tables changes: a database whose marker
/// function is missing gets everything (re)installed at the next boot.
const SCHEMA_MARKER: &str = "schema_v6";

pub(super) fn create_sql(names: &Names) -> String {
    let marker = names.func(SCHEMA_MARKER);
    format!(
        "{}\nCREATE OR REPLACE FUNCTION {marker}() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 6';\n",
        names.sql(CREATE)
    )
}

/// The newest objects of the recipes, for the bootstrap's "is everything there" check (a
/// database set up by an older zdm lacks them, so the functions are replaced).
pub(super) fn marker(names: &Names) -> (String, String) {
    (names.func("backfills"), format!("{}()", names.func(SCHEMA_MARKER)))
}
