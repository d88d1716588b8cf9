//! The `products` table: the specs this region sells, loaded at start and kept current from
//! etcd.

use quota_shared::model::ProductSpec;

use super::error::DbError;
use super::pool::Db;

impl Db {
    /// Every product this region knows (loaded at start so it can sell without etcd).
    pub(crate) async fn load_products(&self) -> Result<Vec<ProductSpec>, DbError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "SELECT product_id, name, total, price, original_price, start_time, end_time,
                        per_user_limit, ended, home_regions, payment_window_s
                   FROM products ORDER BY product_id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ProductSpec {
                product_id: r.get(0),
                name: r.get(1),
                total: r.get(2),
                price: r.get(3),
                original_price: r.get(4),
                start_time: r.get(5),
                end_time: r.get(6),
                per_user_limit: r.get(7),
                ended: r.get(8),
                home_regions: r.get(9),
                payment_window_s: r.get(10),
            })
            .collect())
    }

    /// Stores (or updates) a spec from etcd and makes sure the quota row exists.
    pub(crate) async fn upsert_product(&self, s: &ProductSpec) -> Result<(), DbError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO products (product_id, name, total, price, original_price, start_time,
                                   end_time, per_user_limit, ended, home_regions,
                                   payment_window_s)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (product_id) DO UPDATE SET
                name = EXCLUDED.name, total = EXCLUDED.total, price = EXCLUDED.price,
                original_price = EXCLUDED.original_price, start_time = EXCLUDED.start_time,
                end_time = EXCLUDED.end_time, per_user_limit = EXCLUDED.per_user_limit,
                ended = products.ended OR EXCLUDED.ended,
                home_regions = EXCLUDED.home_regions,
                payment_window_s = EXCLUDED.payment_window_s, updated_at = now()",
            &[
                &s.product_id,
                &s.name,
                &s.total,
                &s.price,
                &s.original_price,
                &s.start_time,
                &s.end_time,
                &s.per_user_limit,
                &s.ended,
                &s.home_regions,
                &s.payment_window_s,
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO region_quota (product_id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&s.product_id],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
