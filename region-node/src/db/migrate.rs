//! Versioned SQL migrations, embedded in the binary and applied at start.
//!
//! Each file in `migrations/` is applied once, in version order, inside a transaction that also
//! records it in `schema_migrations`; a transaction-level advisory lock makes concurrent starts
//! of several nodes against one database safe (the second waits, then finds nothing to do).

use tokio_postgres::Client;

/// `(version, name, sql)` of every migration, in order.
const MIGRATIONS: &[(i32, &str, &str)] = &[
    (
        1,
        "schema",
        include_str!("../../../migrations/0001_schema.sql"),
    ),
    (
        2,
        "purchase_fn",
        include_str!("../../../migrations/0002_purchase_fn.sql"),
    ),
    (
        3,
        "version_column",
        include_str!("../../../migrations/0003_version_column.sql"),
    ),
    (
        4,
        "ended_and_own_order_first",
        include_str!("../../../migrations/0004_ended_and_own_order_first.sql"),
    ),
    (
        5,
        "home_regions",
        include_str!("../../../migrations/0005_home_regions.sql"),
    ),
    (
        6,
        "order_lifecycle",
        include_str!("../../../migrations/0006_order_lifecycle.sql"),
    ),
];

/// Advisory lock key serialising migrations ("quota" in ASCII).
const LOCK_KEY: i64 = 0x71756f7461;

/// Applies every migration not yet recorded; returns how many were applied now.
pub(super) async fn migrate(client: &mut Client) -> Result<usize, tokio_postgres::Error> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 version INTEGER PRIMARY KEY,
                 name TEXT NOT NULL,
                 applied_at TIMESTAMPTZ NOT NULL DEFAULT now())",
        )
        .await
        .or_else(|e| {
            // Two nodes creating the table at once: the loser sees a unique violation.
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                Ok(())
            } else {
                Err(e)
            }
        })?;
    let mut applied = 0;
    for (version, name, sql) in MIGRATIONS {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_KEY])
            .await?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE version = $1",
                &[version],
            )
            .await?
            .is_some();
        if !done {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                &[version, name],
            )
            .await?;
            applied += 1;
            tracing::info!(version, name, "migration applied");
        }
        tx.commit().await?;
    }
    Ok(applied)
}

/// Whether every embedded migration is recorded (for `/readyz`).
pub(super) async fn is_current(client: &Client) -> Result<bool, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await?;
    let max: i32 = row.get(0);
    Ok(max >= MIGRATIONS.last().map_or(0, |m| m.0))
}
