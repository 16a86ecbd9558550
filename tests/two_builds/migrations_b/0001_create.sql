CREATE TABLE posts (
    id     BIGSERIAL PRIMARY KEY,
    title  TEXT NOT NULL,
    legacy TEXT NOT NULL DEFAULT 'unset',
    summary VARCHAR(100)
);
CREATE TABLE old_audit (
    id   BIGSERIAL PRIMARY KEY,
    note TEXT NOT NULL
);
