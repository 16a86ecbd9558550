CREATE TABLE posts (
    id    BIGSERIAL PRIMARY KEY,
    title TEXT NOT NULL,
    a     TEXT,
    b     TEXT
);
