CREATE TABLE posts (
    id    BIGSERIAL PRIMARY KEY,
    title TEXT NOT NULL,
    slug  TEXT,
    views INTEGER
);
CREATE TABLE comments (
    id      BIGSERIAL PRIMARY KEY,
    post_id BIGINT,
    body    TEXT
);
