CREATE TABLE "Äuthors" (
    id BIGSERIAL PRIMARY KEY
);
CREATE TABLE "Post Ü" (
    id        BIGSERIAL PRIMARY KEY,
    "Tïtle x" TEXT,
    amount    INTEGER NOT NULL DEFAULT 0,
    "Äuthor"  BIGINT,
    "ÏSBN"    TEXT,
    "Bödy x"  TEXT,
    "Sümmary" TEXT
);
CREATE TABLE "Old Naïve" (
    id   BIGSERIAL PRIMARY KEY,
    body TEXT NOT NULL DEFAULT 'x'
);
-- Its temporary NOT NULL check's name is longer than 63 bytes, cut inside an `é`.
CREATE TABLE "Lông tàblé nämé wïth ümlauts" (
    id                       BIGSERIAL PRIMARY KEY,
    "çolumn wïth spacés ééé" TEXT
);
