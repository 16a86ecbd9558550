INSERT INTO items (id, n) SELECT g, g % 100 FROM generate_series(1, 20000) g;
INSERT INTO applied_log (version) VALUES (2);
