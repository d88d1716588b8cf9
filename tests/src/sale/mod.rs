//! Driving a sale on a [`crate::Cluster`]: create it, send buyers, read each region's truth
//! back, and the fault-mid-sale scenario built from those.

mod buyers;
mod fault;
mod quotactl;
mod setup;
mod truth;

pub use self::buyers::{buy, buy_all, by_status, drain, http, Outcome};
pub use self::fault::{fault_mid_sale, FaultAt, FaultRun, MidSale};
pub use self::quotactl::{audit_ok, quotactl_json};
pub use self::setup::Sale;
pub use self::truth::{assert_safe, redis_stock, total_sold, truth, wait_for_redis_stock, Truth};
