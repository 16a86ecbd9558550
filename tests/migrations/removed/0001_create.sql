CREATE TABLE notes (
    id    BIGSERIAL PRIMARY KEY,
    body  TEXT NOT NULL,
    extra TEXT
);
CREATE TABLE old_log (
    id BIGSERIAL PRIMARY KEY
);
