-- Build B stops using posts.legacy and old_audit: zdm drops them once no build that
-- still uses them is live. Until then A keeps reading and writing both.
SELECT zdm_drop_column_later('posts', 'legacy');
SELECT zdm_drop_table_later('old_audit');
ALTER TABLE posts ADD COLUMN body TEXT;
