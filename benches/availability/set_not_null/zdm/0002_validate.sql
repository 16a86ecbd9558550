ALTER TABLE items VALIDATE CONSTRAINT items_n_not_null;
