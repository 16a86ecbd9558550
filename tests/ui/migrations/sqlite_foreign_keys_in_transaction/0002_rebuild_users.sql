PRAGMA foreign_keys = OFF;
CREATE TABLE new_users (id INTEGER PRIMARY KEY AUTOINCREMENT, email TEXT NOT NULL UNIQUE, name TEXT);
INSERT INTO new_users (id, email) SELECT id, email FROM users;
DROP TABLE users;
ALTER TABLE new_users RENAME TO users;
PRAGMA foreign_keys = ON;
