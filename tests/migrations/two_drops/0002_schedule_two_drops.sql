-- Two columns of one table retire at once; each keeps its own read-only protection.
SELECT zdm_drop_column_later('posts', 'a', interval '1 hour');
SELECT zdm_drop_column_later('posts', 'b', interval '1 hour');
