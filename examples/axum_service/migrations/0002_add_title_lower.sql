-- Release 2, pre-deploy: a new column (release 1 keeps working) and a batched backfill,
-- which run_pre starts in the background so boot is not held up.
ALTER TABLE posts ADD COLUMN title_lower TEXT;
SELECT zdm_backfill('fill_title_lower', 'posts', 'title_lower = lower(title)', 'title_lower IS NULL');
