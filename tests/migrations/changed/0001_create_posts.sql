CREATE TABLE posts (id BIGINT PRIMARY KEY, title TEXT NOT NULL, legacy_slug TEXT, edited BOOLEAN);
