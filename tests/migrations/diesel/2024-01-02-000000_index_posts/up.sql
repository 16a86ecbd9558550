CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_title_idx ON posts (title);
