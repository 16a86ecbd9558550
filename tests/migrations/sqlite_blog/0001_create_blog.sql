-- A SQLite app's first migration, written the way SQLite apps write them.
PRAGMA user_version = 1;

CREATE TABLE users (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    email      TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);

CREATE TABLE posts (
    id      INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title   TEXT NOT NULL,
    body    TEXT,
    views   INTEGER NOT NULL DEFAULT 0 CHECK (views >= 0)
) STRICT;

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE INDEX posts_user_id_idx ON posts (user_id);

CREATE TRIGGER users_no_empty_email BEFORE INSERT ON users
WHEN NEW.email = ''
BEGIN
    SELECT RAISE(ABORT, 'email must not be empty');
END;

INSERT OR IGNORE INTO settings (key, value) VALUES ('theme', 'light');
INSERT INTO settings (key, value) VALUES ('theme', 'dark')
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
