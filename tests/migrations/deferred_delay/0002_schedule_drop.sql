SELECT zdm_drop_column_later('posts', 'legacy', interval '2 seconds');
SELECT zdm_drop_table_later('old_audit', interval '2 seconds');
