CREATE TABLE many_effects (version BIGINT NOT NULL);
INSERT INTO many_effects (version) VALUES (1);
