CREATE TABLE authors (
    id BIGSERIAL PRIMARY KEY
);
CREATE TABLE books (
    id        BIGSERIAL PRIMARY KEY,
    author_id BIGINT,
    isbn      TEXT,
    title     TEXT
);
