-- This build no longer uses t.c.
SELECT zdm_drop_column_later('t', 'c');
