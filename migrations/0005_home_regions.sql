-- A sale's home regions (the regions among which each buyer has one home, the only region that
-- sells them this product). Part of the sale's spec, fixed when it is created, kept here so a
-- node that starts while etcd is unreachable still answers 421 outside a buyer's home.
ALTER TABLE products ADD COLUMN IF NOT EXISTS home_regions TEXT[] NOT NULL DEFAULT '{}';
