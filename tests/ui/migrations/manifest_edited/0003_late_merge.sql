-- A branch merged after adoption with an old version number: not history, so judged.
CREATE INDEX posts_id_title ON posts (id, title);
