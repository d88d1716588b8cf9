-- Orders after the click: an order is paid, cancelled (by its buyer or an operator) or expires
-- when its payment window passes. The database itself keeps the three promises that make this
-- safe, whatever code path (or operator with psql) changes an order:
--
--   1. only pending → paid | cancelled | expired happens (a trigger refuses anything else, and
--      an order's buyer, product and quantity never change);
--   2. the units of a cancelled or expired order come back to this region exactly once: the
--      same trigger's transaction adds them to region_quota.returned, which only grows, so
--      available = granted − released − sold + returned (Redis follows through the reconciler,
--      which derives its stock from this row and never adds to it);
--   3. every change of an order (created, paid, cancelled, expired) is written to the outbox
--      order_events in the same transaction, for at-least-once delivery to webhooks and for
--      the buyer's event feed.

-- (1) The counter of units given back. `sold` stays the cumulative units ever ordered here
-- (= Σ quantity of every order row, whatever its status); `returned` = Σ quantity of the
-- cancelled and expired ones.
ALTER TABLE region_quota ADD COLUMN IF NOT EXISTS returned BIGINT NOT NULL DEFAULT 0;
ALTER TABLE region_quota DROP CONSTRAINT IF EXISTS region_quota_available_nonnegative;
ALTER TABLE region_quota ADD CONSTRAINT region_quota_available_nonnegative
    CHECK (granted - released - sold + returned >= 0);
ALTER TABLE region_quota DROP CONSTRAINT IF EXISTS region_quota_returned_range;
ALTER TABLE region_quota ADD CONSTRAINT region_quota_returned_range
    CHECK (returned >= 0 AND returned <= sold);

-- (2) Statuses, payments, and who closed an order.
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_status_check;
ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('pending', 'paid', 'cancelled', 'expired'));
ALTER TABLE orders ADD COLUMN IF NOT EXISTS payment_ref TEXT;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS paid_amount NUMERIC(12,2);
ALTER TABLE orders ADD COLUMN IF NOT EXISTS closed_at TIMESTAMPTZ;
ALTER TABLE orders ADD COLUMN IF NOT EXISTS closed_by TEXT;
ALTER TABLE orders DROP CONSTRAINT IF EXISTS orders_closed_by_check;
ALTER TABLE orders ADD CONSTRAINT orders_closed_by_check
    CHECK (closed_by IS NULL OR closed_by IN ('payment', 'buyer', 'operator', 'expiry'));
-- One payment reference pays one order: a payment system's retry finds its own payment.
CREATE UNIQUE INDEX IF NOT EXISTS orders_payment_ref_key ON orders (payment_ref);
-- What the expiry sweep reads: per product, its oldest pending orders (a range that ends at the
-- first order still inside the window, however many are pending).
CREATE INDEX IF NOT EXISTS orders_pending_idx ON orders (product_id, created_at)
    WHERE status = 'pending';

-- The product's payment window in seconds (NULL: the node's --payment-window).
ALTER TABLE products ADD COLUMN IF NOT EXISTS payment_window_s INTEGER
    CHECK (payment_window_s IS NULL OR payment_window_s > 0);

-- (3) The outbox. `seq` orders the events of one region (and so of one order); `event_id` is
-- what a receiver deduplicates on (a redelivery carries the same id).
CREATE TABLE IF NOT EXISTS order_events (
    seq              BIGSERIAL PRIMARY KEY,
    event_id         UUID NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    order_id         UUID NOT NULL,
    product_id       BIGINT NOT NULL,
    user_id          BIGINT NOT NULL,
    region           TEXT NOT NULL,
    kind             TEXT NOT NULL CHECK (kind IN ('created', 'paid', 'cancelled', 'expired')),
    quantity         INTEGER NOT NULL,
    price            NUMERIC(10,2) NOT NULL,
    at               TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Delivery to the webhooks: attempts so far, when to try again, and how it ended.
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at     TIMESTAMPTZ,
    dead_at          TIMESTAMPTZ,
    last_error       TEXT
);
CREATE INDEX IF NOT EXISTS order_events_undelivered
    ON order_events (seq) WHERE delivered_at IS NULL AND dead_at IS NULL;
CREATE INDEX IF NOT EXISTS order_events_by_user ON order_events (user_id, seq);
CREATE INDEX IF NOT EXISTS order_events_by_order ON order_events (order_id, seq);

-- Promise 1: the lifecycle.
CREATE OR REPLACE FUNCTION orders_lifecycle_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.order_id <> OLD.order_id OR NEW.product_id <> OLD.product_id
       OR NEW.user_id <> OLD.user_id OR NEW.quantity <> OLD.quantity
       OR NEW.region <> OLD.region OR NEW.price <> OLD.price THEN
        RAISE EXCEPTION 'order %: buyer, product, quantity and price never change', OLD.order_id
            USING ERRCODE = 'QS002';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status
       AND (OLD.status <> 'pending' OR NEW.status NOT IN ('paid', 'cancelled', 'expired')) THEN
        RAISE EXCEPTION 'order % cannot go from % to %', OLD.order_id, OLD.status, NEW.status
            USING ERRCODE = 'QS002';
    END IF;
    RETURN NEW;
END
$$;
CREATE OR REPLACE TRIGGER orders_lifecycle_guard
    BEFORE UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION orders_lifecycle_guard();

-- Promises 2 and 3: units back, and the event, in the changing transaction.
CREATE OR REPLACE FUNCTION orders_after_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO order_events (order_id, product_id, user_id, region, kind, quantity, price)
        VALUES (NEW.order_id, NEW.product_id, NEW.user_id, NEW.region, 'created', NEW.quantity,
                NEW.price);
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        IF NEW.status IN ('cancelled', 'expired') THEN
            UPDATE region_quota SET returned = returned + NEW.quantity, updated_at = now()
             WHERE product_id = NEW.product_id;
        END IF;
        INSERT INTO order_events (order_id, product_id, user_id, region, kind, quantity, price)
        VALUES (NEW.order_id, NEW.product_id, NEW.user_id, NEW.region, NEW.status, NEW.quantity,
                NEW.price);
    END IF;
    RETURN NULL;
END
$$;
CREATE OR REPLACE TRIGGER orders_after_change
    AFTER INSERT OR UPDATE OF status ON orders
    FOR EACH ROW EXECUTE FUNCTION orders_after_change();

-- The purchase checks now count returned units as available again.
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
       AND q.granted - q.released - q.sold + q.returned >= p_quantity;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'sold out in this region' USING ERRCODE = 'QS001';
    END IF;
END
$$;
