-- zdm:after_deploy
SELECT zdm_change_column_type_finish('orders', 'amount');
