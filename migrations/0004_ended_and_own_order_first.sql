-- (1) An explicit "ended" mark on a product. `product end` used to move `end_time` to
-- max(now, start + 1 ms): on a sale that had not started yet that left a one-millisecond
-- window at its start, and every end depended on this region's clock agreeing with the
-- coordinator's. An ended sale is refused whatever any clock says.
ALTER TABLE products ADD COLUMN IF NOT EXISTS ended BOOLEAN NOT NULL DEFAULT false;

-- (2) quota_purchase looks for its own order first. A purchase whose commit reached the WAL but
-- whose answer was lost is retried with the same order id; the retry must find that order even
-- if the sale ended (or the region sold out) in between, instead of answering "not active"
-- for an order that exists.
--
-- outcome: 'created' | 'already_purchased' | 'not_active'  (otherwise as in 0002)
CREATE OR REPLACE FUNCTION quota_purchase(
    p_order_id UUID, p_product_id BIGINT, p_user_id BIGINT, p_quantity INTEGER, p_region TEXT)
RETURNS TABLE (outcome TEXT, order_id UUID, quantity INTEGER, price NUMERIC(10,2),
               status TEXT, created_at TIMESTAMPTZ)
LANGUAGE plpgsql AS $$
DECLARE
    v_price NUMERIC(10,2);
    v_active BOOLEAN;
BEGIN
    RETURN QUERY
    SELECT 'created'::TEXT, o.order_id, o.quantity, o.price, o.status, o.created_at
      FROM orders o WHERE o.order_id = p_order_id;
    IF FOUND THEN
        RETURN;
    END IF;

    SELECT p.price, NOT p.ended AND now() >= p.start_time AND now() < p.end_time
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
