-- zdm:after_deploy
INSERT INTO effects (version) VALUES (6);
