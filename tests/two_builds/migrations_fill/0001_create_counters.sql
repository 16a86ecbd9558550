CREATE TABLE counters (
    id      BIGSERIAL PRIMARY KEY,
    touched INTEGER NOT NULL DEFAULT 0
);
INSERT INTO counters (touched) SELECT 0 FROM generate_series(1, 200000);
