-- Optimistic-locking version of the quota row, used only by the V2 ("optimistic") purchase
-- strategy kept for benchmarks; bumping it is harmless for every other strategy.
ALTER TABLE region_quota ADD COLUMN IF NOT EXISTS version BIGINT NOT NULL DEFAULT 0;
