CREATE TABLE items (id BIGINT PRIMARY KEY, n INT);
INSERT INTO items (id, n) SELECT g, g FROM generate_series(1, 1000) g;
