-- Release 1: the blog's first table.
CREATE TABLE posts (
    id          BIGINT PRIMARY KEY,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    legacy_slug TEXT
);
