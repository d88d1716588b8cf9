//! The release bookkeeping in Postgres: `quota_releases` records each handled request id (so a
//! request is handled exactly once) and `rel` grows by what was taken, both under the quota row
//! lock. The steps and their safety argument are in `crate::release`.

use quota_shared::model::ReleasePublished;

use super::error::DbError;
use super::pool::Db;
use super::quota::LockedQuota;

impl LockedQuota<'_> {
    /// Whether request `request_id` was already handled (then nothing more may happen).
    pub(crate) async fn release_handled(&self, request_id: &str) -> Result<bool, DbError> {
        Ok(self
            .tx
            .query_opt(
                "SELECT 1 FROM quota_releases WHERE request_id = $1",
                &[&request_id],
            )
            .await?
            .is_some())
    }

    /// Records request `request_id` (asked `requested`, took `taken`) and `rel += taken`;
    /// [`LockedQuota::commit`] makes both durable together.
    pub(crate) async fn record_release(
        &self,
        request_id: &str,
        requested: i64,
        taken: i64,
    ) -> Result<(), DbError> {
        self.tx
            .execute(
                "INSERT INTO quota_releases (request_id, product_id, requested, released)
                 VALUES ($1, $2, $3, $4)",
                &[&request_id, &self.product_id, &requested, &taken],
            )
            .await?;
        self.tx
            .execute(
                "UPDATE region_quota SET released = released + $2, updated_at = now() WHERE product_id = $1",
                &[&self.product_id, &taken],
            )
            .await?;
        Ok(())
    }
}

impl Db {
    /// `rel` (released locally) and the last request handled, as the value to publish as `R`.
    pub(crate) async fn released_locally(
        &self,
        product_id: i64,
    ) -> Result<ReleasePublished, DbError> {
        let c = self.conn().await?;
        let row = c
            .query_one(
                "SELECT q.released,
                        (SELECT request_id FROM quota_releases r WHERE r.product_id = q.product_id
                          ORDER BY created_at DESC, request_id DESC LIMIT 1),
                        (SELECT count(*) FROM quota_releases r WHERE r.product_id = q.product_id)
                   FROM region_quota q WHERE q.product_id = $1",
                &[&product_id],
            )
            .await?;
        Ok(ReleasePublished {
            released: row.get(0),
            last_request: row.get(1),
            handled: row.get(2),
        })
    }
}
