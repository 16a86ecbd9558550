-- zdm:safety_assured the table has 12 rows in every deployment
ALTER TABLE posts ADD COLUMN meta json;
