CREATE TABLE entries (
    id    BIGSERIAL PRIMARY KEY,
    body  TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'draft'
);
