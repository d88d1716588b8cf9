-- The purchase transaction as one server-side function: one round trip, one implicit
-- Read Committed transaction, so the hot quota row is locked only for the statement.
--
-- Order of work: the order row first (no hot lock; a duplicate buyer is answered without
-- touching the quota row), then the conditional UPDATE of the quota row, which takes its lock
-- and re-checks availability under it. If the UPDATE finds too little, the function raises
-- SQLSTATE QS001 and the whole statement, order row included, rolls back.
--
-- Idempotent per order id: a retry after an ambiguous failure (connection lost after commit)
-- finds its own order and reports 'created' again instead of 'already_purchased'.
--
-- outcome: 'created' | 'already_purchased' | 'not_active'
CREATE OR REPLACE FUNCTION quota_purchase(
    p_order_id UUID, p_product_id BIGINT, p_user_id BIGINT, p_quantity INTEGER, p_region TEXT)
RETURNS TABLE (outcome TEXT, order_id UUID, quantity INTEGER, price NUMERIC(10,2),
               status TEXT, created_at TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
DECLARE
    v_price NUMERIC(10,2);
    v_active BOOLEAN;
BEGIN
    SELECT p.price, now() >= p.start_time AND now() < p.end_time
      INTO v_price, v_active
      FROM products p WHERE p.product_id = p_product_id;
    IF NOT FOUND OR NOT v_active THEN
        RETURN QUERY SELECT 'not_active'::TEXT, NULL::UUID, NULL::INTEGER, NULL::NUMERIC(10,2),
                            NULL::TEXT, NULL::TIMESTAMPTZ;
        RETURN;
    END IF;

    RETURN QUERY
    INSERT INTO orders AS o (order_id, product_id, user_id, region, quantity, price, status)
    VALUES (p_order_id, p_product_id, p_user_id, p_region, p_quantity, v_price, 'pending')
    ON CONFLICT ON CONSTRAINT orders_one_per_user DO NOTHING
    RETURNING 'created'::TEXT, o.order_id, o.quantity, o.price, o.status, o.created_at;
    IF NOT FOUND THEN
        RETURN QUERY
        SELECT CASE WHEN o.order_id = p_order_id THEN 'created' ELSE 'already_purchased' END,
               o.order_id, o.quantity, o.price, o.status, o.created_at
          FROM orders o WHERE o.user_id = p_user_id AND o.product_id = p_product_id;
        RETURN;
    END IF;

    UPDATE region_quota q
       SET sold = q.sold + p_quantity, updated_at = now()
     WHERE q.product_id = p_product_id
       AND q.granted - q.released - q.sold >= p_quantity;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sold out in this region' USING ERRCODE = 'QS001';
    END IF;
END
$$;
