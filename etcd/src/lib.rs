//! How every quota process reaches etcd.
//!
//! etcd-client balances requests over all the endpoints it is given, and keeps sending a share
//! of them to a member that is down: with one of three members dead about one request in four
//! fails `Unavailable`. A region session that ends on any etcd error would then restart every
//! few requests, and a coordinator round (several requests) would mostly fail — a three-member
//! etcd would be *less* available than one member. So the processes talk to **one member at a
//! time**: [`Members::connect`] tries the members in turn, starting after the one used last,
//! and keeps the first that belongs to a quorum (its status names a Raft leader). The client
//! also asks etcd to refuse every request while that member has no leader
//! (`require_leader`), so a member cut off in a minority fails fast — a watch on it is
//! cancelled instead of going silent — and the caller's session ends and connects to the next
//! member.
//!
//! Which member answers is never a safety question: every ledger write is a compare-and-swap
//! or a lease-bound put that etcd orders linearizably whichever member forwards it.
//!
//! With etcd authentication on, each process connects as its own user ([`EtcdArgs`]: a user
//! and a password file) whose role allows only what that party must do ([`rbac`]: a region
//! writes only its own keys); [`rbac::bootstrap`] sets the users and roles up.

mod args;
mod members;
pub mod rbac;
mod secret;

pub use args::EtcdArgs;
pub use members::{ConnectError, Connected, Credentials, EtcdOptions, Members};
pub use quota_shared::secret::{Secret, SecretError};
pub use secret::ensure_secret_file;
