//! Redis: the admission filter. Never the truth — losing it costs availability, not safety.
//!
//! Per product `p`, four keys share the hash tag `{p}` (so they would share a slot in a Redis
//! cluster and every script touches one slot):
//!
//! * `quota:{p}:stock`   — admission tokens left;
//! * `quota:{p}:buyers`  — hash user → units admitted or bought (the per-user limit filter);
//! * `quota:{p}:tickets` — sorted set of in-flight purchases `"{order_id}|{user}|{qty}"`,
//!   scored by admission time (ms, Redis clock);
//! * `quota:{p}:gen`     — present iff the other three were built from Postgres. A flush or a
//!   restart removes it, and every admission then answers "not ready" until the reconciler has
//!   rebuilt the state, so a half-empty Redis can never admit anybody.
//!
//! Each operation is one Lua script, so it is atomic with respect to every other one.

use std::time::Duration;

use quota_shared::admission::AdmitOutcome;
use quota_shared::reconcile::Ticket;
use redis::aio::ConnectionManager;
use redis::Script;

use crate::backends::{read_pem, read_secret, RedisArgs};

/// A Redis failure (connection refused, timeout, script error).
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct StockError(String);

impl From<redis::RedisError> for StockError {
    fn from(e: redis::RedisError) -> Self {
        metrics::counter!("quota_dependency_errors_total", "dependency" => "redis").increment(1);
        StockError(e.to_string())
    }
}

fn key(product_id: i64, what: &str) -> String {
    format!("quota:{{{product_id}}}:{what}")
}

fn keys(product_id: i64) -> [String; 4] {
    [
        key(product_id, "stock"),
        key(product_id, "buyers"),
        key(product_id, "tickets"),
        key(product_id, "gen"),
    ]
}

/// Checks the per-user limit and the stock, then takes the tokens and records the ticket.
/// Reply `[code, value]`, decoded by [`AdmitOutcome::from_reply`].
const ADMIT: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 0 then return {3, 0} end
local held = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local qty = tonumber(ARGV[2])
if held > 0 or held + qty > tonumber(ARGV[3]) then return {1, held} end
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
if stock < qty then return {2, stock} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('DECRBY', KEYS[1], qty)
redis.call('HINCRBY', KEYS[2], ARGV[1], qty)
redis.call('ZADD', KEYS[3], now, ARGV[4])
return {0, stock - qty}
"#;

/// Ends a ticket. Committed: just forget it (its units are in Postgres's `sold`). Aborted: give
/// the tokens and the user's admission back. A ticket that is no longer there (the reconciler
/// expired it, or Redis was flushed and rebuilt) changes nothing: the rebuild already counted it.
/// Reply: stock after the call, or -1 when the ticket was gone.
const FINISH: &str = r#"
if redis.call('ZREM', KEYS[3], ARGV[1]) == 0 then return -1 end
if ARGV[4] == '1' then return tonumber(redis.call('GET', KEYS[1]) or '0') end
local left = redis.call('HINCRBY', KEYS[2], ARGV[2], -tonumber(ARGV[3]))
if left <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
return redis.call('INCRBY', KEYS[1], ARGV[3])
"#;

/// Reads the in-flight tickets (or `false` when the state must be rebuilt).
const SNAPSHOT: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 0 then return false end
return redis.call('ZRANGE', KEYS[3], 0, -1)
"#;

/// Reads stock and the in-flight tickets in one atomic step (or `false` when the state must be
/// rebuilt): `[stock, [ticket…]]`, for the audit.
const PEEK_ALL: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 0 then return false end
return { tonumber(redis.call('GET', KEYS[1]) or '0'), redis.call('ZRANGE', KEYS[3], 0, -1) }
"#;

/// Sets stock := max(0, available − Σ uncommitted in-flight). ARGV: available, expiry age in
/// ms, then the members of tickets Postgres shows as committed (dropped without give-back).
/// Tickets older than the expiry belong to a dead process: dropped, user admission returned.
/// Reply `[old stock, new stock, in flight, expired]`, or `false` when a rebuild is needed.
const SYNC: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 0 then return false end
for i = 3, #ARGV do redis.call('ZREM', KEYS[3], ARGV[i]) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now - tonumber(ARGV[2]))
for _, m in ipairs(expired) do
  local user, qty = string.match(m, '^[^|]+|(%d+)|(%d+)$')
  if user then
    local left = redis.call('HINCRBY', KEYS[2], user, -tonumber(qty))
    if left <= 0 then redis.call('HDEL', KEYS[2], user) end
  end
  redis.call('ZREM', KEYS[3], m)
end
local inflight = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local qty = string.match(m, '|(%d+)$')
  inflight = inflight + tonumber(qty or '0')
end
local target = tonumber(ARGV[1]) - inflight
if target < 0 then target = 0 end
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
if old ~= target then redis.call('SET', KEYS[1], target) end
return {old, target, inflight, #expired}
"#;

/// Installs a state rebuilt from Postgres, unless another node already did. KEYS[5] is a
/// staging hash holding the buyers. ARGV: stock, generation id.
/// Reply 1 if installed, 0 if the state was already valid.
const REBUILD: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 1 then redis.call('DEL', KEYS[5]) return 0 end
redis.call('DEL', KEYS[2], KEYS[3])
if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('RENAME', KEYS[5], KEYS[2]) end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SET', KEYS[4], ARGV[2])
return 1
"#;

/// Takes up to ARGV[1] tokens (for a release); reply: tokens taken, or -1 when the state must
/// be rebuilt first.
const TAKE: &str = r#"
if redis.call('EXISTS', KEYS[4]) == 0 then return -1 end
local stock = tonumber(redis.call('GET', KEYS[1]) or '0')
local n = math.min(stock, tonumber(ARGV[1]))
if n > 0 then redis.call('DECRBY', KEYS[1], n) end
return n
"#;

/// What one reconciliation pass did to Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SyncResult {
    /// Redis lost its state; call [`Stock::rebuild`].
    NeedsRebuild,
    /// Stock set from `old` to `new`; `in_flight` uncommitted units; `expired` tickets dropped.
    Synced {
        /// Stock before.
        old: i64,
        /// Stock after.
        new: i64,
        /// Uncommitted in-flight units.
        in_flight: i64,
        /// Abandoned tickets dropped.
        expired: i64,
    },
}

/// The admission filter of one region: a multiplexed, self-reconnecting Redis connection and
/// the scripts above.
#[derive(Clone)]
pub(crate) struct Stock {
    conn: ConnectionManager,
    admit: Script,
    finish: Script,
    snapshot: Script,
    peek_all: Script,
    sync: Script,
    rebuild: Script,
    take: Script,
}

impl Stock {
    /// Connects (lazily reconnecting later); fails only if Redis is unreachable at start.
    pub(crate) async fn connect(args: &RedisArgs, timeout: Duration) -> Result<Stock, StockError> {
        let mut info = redis::IntoConnectionInfo::into_connection_info(args.redis_url.as_str())?;
        if let Some(file) = &args.redis_password_file {
            let password = read_secret(file).map_err(|e| StockError(e.to_string()))?;
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let client = match &args.redis_ca_file {
            Some(ca) => {
                let pem = read_pem(ca).map_err(|e| StockError(e.to_string()))?;
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem),
                };
                redis::Client::build_with_tls(info, certs)?
            }
            None => redis::Client::open(info)?,
        };
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(timeout))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_with_config(client, cfg).await?;
        Ok(Stock {
            conn,
            admit: Script::new(ADMIT),
            finish: Script::new(FINISH),
            snapshot: Script::new(SNAPSHOT),
            peek_all: Script::new(PEEK_ALL),
            sync: Script::new(SYNC),
            rebuild: Script::new(REBUILD),
            take: Script::new(TAKE),
        })
    }

    /// Liveness probe.
    pub(crate) async fn ping(&self) -> Result<(), StockError> {
        let mut c = self.conn.clone();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(())
    }

    /// The atomic admission step of a purchase.
    pub(crate) async fn admit(
        &self,
        product_id: i64,
        ticket: &Ticket,
        limit: i32,
    ) -> Result<AdmitOutcome, StockError> {
        let mut c = self.conn.clone();
        let mut inv = self.admit.prepare_invoke();
        for k in keys(product_id) {
            inv.key(k);
        }
        let (code, value): (i64, i64) = inv
            .arg(ticket.user_id)
            .arg(ticket.quantity)
            .arg(limit)
            .arg(ticket.member())
            .invoke_async(&mut c)
            .await?;
        AdmitOutcome::from_reply(code, value)
            .ok_or_else(|| StockError(format!("unexpected admission reply [{code}, {value}]")))
    }

    /// Ends a ticket (see [`FINISH`]); returns the stock after the call when the ticket was
    /// still there.
    pub(crate) async fn finish(
        &self,
        product_id: i64,
        ticket: &Ticket,
        committed: bool,
    ) -> Result<Option<i64>, StockError> {
        let mut c = self.conn.clone();
        let mut inv = self.finish.prepare_invoke();
        for k in keys(product_id) {
            inv.key(k);
        }
        let r: i64 = inv
            .arg(ticket.member())
            .arg(ticket.user_id)
            .arg(ticket.quantity)
            .arg(if committed { "1" } else { "0" })
            .invoke_async(&mut c)
            .await?;
        Ok((r >= 0).then_some(r))
    }

    /// In-flight tickets, or `None` when Redis must be rebuilt.
    pub(crate) async fn snapshot(
        &self,
        product_id: i64,
    ) -> Result<Option<Vec<Ticket>>, StockError> {
        let mut c = self.conn.clone();
        let mut inv = self.snapshot.prepare_invoke();
        for k in keys(product_id) {
            inv.key(k);
        }
        let r: Option<Vec<String>> = inv.invoke_async(&mut c).await?;
        Ok(r.map(|v| v.iter().filter_map(|m| Ticket::parse(m)).collect()))
    }

    /// One reconciliation write (see [`SYNC`]). Call it while holding the quota row lock.
    pub(crate) async fn sync(
        &self,
        product_id: i64,
        pg_available: i64,
        expiry: Duration,
        committed: &[Ticket],
    ) -> Result<SyncResult, StockError> {
        let mut c = self.conn.clone();
        let mut inv = self.sync.prepare_invoke();
        for k in keys(product_id) {
            inv.key(k);
        }
        inv.arg(pg_available).arg(expiry.as_millis() as i64);
        for t in committed {
            inv.arg(t.member());
        }
        let r: Option<(i64, i64, i64, i64)> = inv.invoke_async(&mut c).await?;
        Ok(match r {
            None => SyncResult::NeedsRebuild,
            Some((old, new, in_flight, expired)) => SyncResult::Synced {
                old,
                new,
                in_flight,
                expired,
            },
        })
    }

    /// Rebuilds a lost state from Postgres: buyers (user, units) and the stock to admit.
    /// Returns false if another node rebuilt it first (nothing changed).
    pub(crate) async fn rebuild(
        &self,
        product_id: i64,
        stock: i64,
        buyers: &[(i64, i64)],
    ) -> Result<bool, StockError> {
        let mut c = self.conn.clone();
        let staging = key(product_id, &format!("staging:{}", uuid::Uuid::new_v4()));
        for chunk in buyers.chunks(1000) {
            let mut cmd = redis::cmd("HSET");
            cmd.arg(&staging);
            for (user, qty) in chunk {
                cmd.arg(user).arg(qty);
            }
            let _: i64 = cmd.query_async(&mut c).await?;
        }
        let mut inv = self.rebuild.prepare_invoke();
        for k in keys(product_id) {
            inv.key(k);
        }
        inv.key(&staging);
        let generation = uuid::Uuid::now_v7().to_string();
        let r: i64 = inv.arg(stock).arg(generation).invoke_async(&mut c).await?;
        Ok(r == 1)
    }

    /// Takes up to `n` tokens out of admission (first step of a release); returns how many.
    pub(crate) async fn take(&self, product_id: i64, n: i64) -> Result<i64, StockError> {
        let mut c = self.conn.clone();
        let mut inv = self.take.prepare_invoke();
        for k in keys(product_id) {
            inv.key(k);
        }
        let taken: i64 = inv.arg(n).invoke_async(&mut c).await?;
        if taken < 0 {
            return Err(StockError("admission state not built yet".into()));
        }
        Ok(taken)
    }

    /// Stock and in-flight tickets read in one atomic step (`None` when the state is not
    /// built): the audit compares them with Postgres without a purchase in between.
    pub(crate) async fn peek_all(
        &self,
        product_id: i64,
    ) -> Result<Option<(i64, Vec<Ticket>)>, StockError> {
        let mut c = self.conn.clone();
        let mut inv = self.peek_all.prepare_invoke();
        for k in keys(product_id) {
            inv.key(k);
        }
        let r: Option<(i64, Vec<String>)> = inv.invoke_async(&mut c).await?;
        Ok(r.map(|(stock, members)| {
            let tickets = members.iter().filter_map(|m| Ticket::parse(m)).collect();
            (stock, tickets)
        }))
    }
}
