CREATE TABLE items (
    id      BIGINT PRIMARY KEY,
    payload TEXT NOT NULL,
    legacy  TEXT,
    touched INTEGER NOT NULL DEFAULT 0
);
INSERT INTO items (id, payload, legacy) SELECT g, md5(g::text), 'l' || g FROM generate_series(1, 100000) g;
CREATE TABLE effects (version BIGINT NOT NULL);
INSERT INTO effects (version) VALUES (1);
