-- The build that embeds this migration no longer uses posts.legacy nor old_audit.
SELECT zdm_drop_column_later('posts', 'legacy');
SELECT zdm_drop_table_later('old_audit');
