SELECT zdm_drop_column_later('items', 'legacy');
INSERT INTO effects (version) VALUES (5);
