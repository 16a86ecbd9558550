-- zdm:after_deply
DROP TABLE t;
