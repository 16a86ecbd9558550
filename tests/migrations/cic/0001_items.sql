CREATE TABLE items (id BIGINT PRIMARY KEY, n INT);
-- Duplicates in n: a unique index on it cannot be built until they are gone.
INSERT INTO items (id, n) SELECT g, g % 500 FROM generate_series(1, 1000) g;
