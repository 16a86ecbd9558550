CREATE TABLE posts (
    id     BIGSERIAL PRIMARY KEY,
    title  TEXT NOT NULL,
    legacy TEXT NOT NULL DEFAULT 'unset'
);
CREATE TABLE old_audit (
    id   BIGSERIAL PRIMARY KEY,
    note TEXT NOT NULL
);
