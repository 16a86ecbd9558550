CREATE TABLE posts (
    id      BIGINT PRIMARY KEY,
    title   TEXT NOT NULL,
    summary VARCHAR(100)
);
INSERT INTO posts (id, title, summary) VALUES (1, 'first', 'short');
