-- zdm:after_deploy
-- Settings get a NOT NULL updated_at: SQLite cannot add a constraint in place, so the
-- table is rebuilt (small and read at boot only).
-- zdm:safety_assured settings holds a few rows; rebuilt after the deploy
CREATE TABLE new_settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT '1970-01-01 00:00:00'
) WITHOUT ROWID;
INSERT INTO new_settings (key, value) SELECT key, value FROM settings;
DROP TABLE settings;
ALTER TABLE new_settings RENAME TO settings;
