-- The blog's tables, as a SQLite app writes them.
CREATE TABLE users (
    id    INTEGER PRIMARY KEY AUTOINCREMENT,
    email TEXT NOT NULL UNIQUE
);
CREATE TABLE posts (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT NOT NULL,
    body        TEXT,
    legacy_slug TEXT
) STRICT;
CREATE TABLE tags (name TEXT PRIMARY KEY, note TEXT) WITHOUT ROWID;
PRAGMA user_version = 1;
INSERT OR IGNORE INTO tags (name) VALUES ('rust');
