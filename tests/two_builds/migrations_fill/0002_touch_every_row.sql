-- Not idempotent on purpose: a re-applied batch would leave 2, a skipped one 0.
SELECT zdm_backfill('touch', 'counters', 'touched = touched + 1');
