-- amount outgrows integer: a bigint shadow follows it until the swap.
SELECT zdm_change_column_type_begin('orders', 'amount', 'bigint');
