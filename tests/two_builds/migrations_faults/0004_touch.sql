-- Not idempotent on purpose: a batch applied twice leaves 2, a skipped one 0.
SELECT zdm_backfill('touch', 'items', 'touched = touched + 1');
INSERT INTO effects (version) VALUES (4);
