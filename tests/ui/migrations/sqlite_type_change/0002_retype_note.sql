CREATE TABLE new_tags (name TEXT PRIMARY KEY, note INTEGER) WITHOUT ROWID;
INSERT INTO new_tags (name, note) SELECT name, note FROM tags;
DROP TABLE tags;
ALTER TABLE new_tags RENAME TO tags;
