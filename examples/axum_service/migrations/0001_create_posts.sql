-- Release 1 of the service: posts, with a slug that release 2 stops using.
CREATE TABLE posts (
    id          BIGSERIAL PRIMARY KEY,
    title       TEXT NOT NULL,
    legacy_slug TEXT
);
INSERT INTO posts (title, legacy_slug)
SELECT 'Post ' || g, 'post-' || g FROM generate_series(1, 5000) AS g;
