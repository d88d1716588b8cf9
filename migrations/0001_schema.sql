-- A region's Postgres: the truth about what this region sold and holds.
-- Applied by region-node at start (and by `region-node migrate`), in a transaction, under an
-- advisory lock, recorded in schema_migrations; every statement is also safe to re-run.

-- Products as this region knows them (a copy of the coordinator's spec in etcd).
CREATE TABLE IF NOT EXISTS products (
    product_id      BIGINT PRIMARY KEY CHECK (product_id > 0),
    name            TEXT NOT NULL,
    total           BIGINT NOT NULL CHECK (total >= 0),
    price           NUMERIC(10,2) NOT NULL CHECK (price >= 0),
    original_price  NUMERIC(10,2) NOT NULL CHECK (original_price >= 0),
    start_time      TIMESTAMPTZ NOT NULL,
    end_time        TIMESTAMPTZ NOT NULL,
    per_user_limit  INTEGER NOT NULL CHECK (per_user_limit >= 1),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (end_time > start_time)
);

-- The region's share of each product. granted (g) and released (rel) only grow;
-- available = g - rel - sold can never go negative: this CHECK is the last line against oversell.
CREATE TABLE IF NOT EXISTS region_quota (
    product_id  BIGINT PRIMARY KEY REFERENCES products (product_id),
    granted     BIGINT NOT NULL DEFAULT 0 CHECK (granted >= 0),
    released    BIGINT NOT NULL DEFAULT 0 CHECK (released >= 0),
    sold        BIGINT NOT NULL DEFAULT 0 CHECK (sold >= 0),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT region_quota_available_nonnegative CHECK (granted - released - sold >= 0)
);

-- One order per user and product (the per-user limit bounds its quantity).
CREATE TABLE IF NOT EXISTS orders (
    order_id    UUID PRIMARY KEY,
    product_id  BIGINT NOT NULL REFERENCES products (product_id),
    user_id     BIGINT NOT NULL CHECK (user_id > 0),
    region      TEXT NOT NULL,
    quantity    INTEGER NOT NULL DEFAULT 1 CHECK (quantity >= 1),
    price       NUMERIC(10,2) NOT NULL CHECK (price >= 0),
    status      TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'paid', 'cancelled')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT orders_one_per_user UNIQUE (user_id, product_id)
);
CREATE INDEX IF NOT EXISTS orders_product_idx ON orders (product_id);
CREATE INDEX IF NOT EXISTS orders_created_idx ON orders (created_at);

-- Release requests this region has handled: the request id makes a release exactly-once
-- (a retried or re-delivered request finds its row and changes nothing).
CREATE TABLE IF NOT EXISTS quota_releases (
    request_id  TEXT PRIMARY KEY,
    product_id  BIGINT NOT NULL REFERENCES products (product_id),
    requested   BIGINT NOT NULL CHECK (requested >= 0),
    released    BIGINT NOT NULL CHECK (released >= 0 AND released <= requested),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
