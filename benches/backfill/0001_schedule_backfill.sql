-- The benchmark's backfill: the same change as the single UPDATE it is compared with.
SELECT zdm_backfill('fill_b', 'items_batched', 'b = a + 1');
