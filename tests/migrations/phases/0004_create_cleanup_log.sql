-- zdm:after_deploy
CREATE TABLE cleanup_log (note TEXT);
