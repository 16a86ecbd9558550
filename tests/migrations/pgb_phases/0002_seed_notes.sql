INSERT INTO notes (id, title) SELECT g, 'note ' || g FROM generate_series(1, 10) g;
