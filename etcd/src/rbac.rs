//! Who may read and write which etcd keys: one role for the coordinator, one per region.
//!
//! Escrow is only as safe as its weakest region: if east's credentials could write south's
//! releases, a grant, a ledger or the election key, one compromised (or buggy) region could
//! mint stock for everyone. So each region's role may **write only under `regions/{r}/`** and
//! read what a region must read (the product specs and movable stock, its own grants and
//! release requests, its drain flag, the home-region list); the coordinator's role reads
//! everything and writes only the keys the coordinator owns — never a region's. [`Plan`] is
//! the pure description (tested below without a server); [`apply`] makes etcd match it,
//! idempotently, so re-running after adding a region or rotating a password is safe.

use etcd_client::{Client, Permission, PermissionType};
use quota_shared::keys;

/// The coordinator's etcd user (and role).
pub const COORDINATOR_USER: &str = "quota-coordinator";
/// etcd's superuser: only the bootstrap and the operator's break-glass tooling use it.
pub const ROOT_USER: &str = "root";

/// A region's etcd user (and role) name.
pub fn region_user(region: &str) -> String {
    format!("quota-region-{region}")
}

/// Read, or read and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Get, range and watch.
    Read,
    /// Everything a key allows: get, put, delete, txn, leases on it.
    ReadWrite,
}

/// One key, or every key under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Range {
    /// Exactly this key.
    Key(String),
    /// Every key starting with this.
    Prefix(String),
}

impl Range {
    fn covers(&self, key: &str) -> bool {
        match self {
            Range::Key(k) => k == key,
            Range::Prefix(p) => key.starts_with(p.as_str()),
        }
    }
}

/// A role's name and permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Role (and user) name.
    pub name: String,
    /// What it may touch.
    pub grants: Vec<(Access, Range)>,
}

impl Role {
    /// Whether this role may read `key`.
    pub fn may_read(&self, key: &str) -> bool {
        self.grants.iter().any(|(_, r)| r.covers(key))
    }

    /// Whether this role may write `key`.
    pub fn may_write(&self, key: &str) -> bool {
        self.grants
            .iter()
            .any(|(a, r)| *a == Access::ReadWrite && r.covers(key))
    }
}

/// Every role of a deployment with these regions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The coordinator's role first, then one per region.
    pub roles: Vec<Role>,
}

impl Plan {
    /// The roles for `regions`.
    pub fn new(regions: &[String]) -> Plan {
        let mut roles = vec![coordinator_role()];
        roles.extend(regions.iter().map(|r| region_role(r)));
        Plan { roles }
    }

    /// The role named `name`.
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.iter().find(|r| r.name == name)
    }
}

fn coordinator_role() -> Role {
    use Access::ReadWrite;
    Role {
        name: COORDINATOR_USER.to_string(),
        grants: vec![
            (Access::Read, Range::Prefix(keys::ROOT.to_string())),
            (ReadWrite, Range::Prefix(keys::products_prefix())),
            (ReadWrite, Range::Prefix(format!("{}grants/", keys::ROOT))),
            (ReadWrite, Range::Prefix(keys::release_requests_root())),
            (ReadWrite, Range::Prefix(keys::drains_prefix())),
            (
                ReadWrite,
                Range::Prefix(format!("{}operations/", keys::ROOT)),
            ),
            (ReadWrite, Range::Key(keys::home_regions())),
            // The election: the campaign's key lives under the election name.
            (ReadWrite, Range::Prefix(keys::election())),
        ],
    }
}

fn region_role(region: &str) -> Role {
    Role {
        name: region_user(region),
        grants: vec![
            (
                Access::ReadWrite,
                Range::Prefix(format!("{}regions/{region}/", keys::ROOT)),
            ),
            (Access::Read, Range::Prefix(keys::products_prefix())),
            (Access::Read, Range::Prefix(keys::grants_prefix(region))),
            (
                Access::Read,
                Range::Prefix(keys::release_requests_prefix(region)),
            ),
            (Access::Read, Range::Key(keys::drain(region))),
            (Access::Read, Range::Key(keys::home_regions())),
        ],
    }
}

/// What [`apply`] changed (empty when etcd already matched).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    /// One line per change, e.g. `role quota-region-east: +readwrite /quota/v1/regions/east/`.
    pub changes: Vec<String>,
}

/// A user to create (or whose password to set) with the role of the same name (`root` gets
/// etcd's built-in `root` role: all keys, and auth administration).
pub struct User<'a> {
    /// User name.
    pub name: &'a str,
    /// Its password.
    pub password: &'a str,
}

/// Makes etcd's roles and users match `plan` and `users` (adding what is missing, revoking
/// permissions the plan no longer names, setting every password), then enables
/// authentication. `client` must be allowed to administer auth (root, or auth still off).
pub async fn apply(
    client: &mut Client,
    plan: &Plan,
    users: &[User<'_>],
) -> Result<Applied, etcd_client::Error> {
    let mut out = Applied::default();
    let existing_roles = client.role_list().await?.roles().to_vec();
    let mut roles: Vec<&str> = vec![ROOT_USER];
    roles.extend(plan.roles.iter().map(|r| r.name.as_str()));
    for name in roles {
        if !existing_roles.iter().any(|r| r == name) {
            client.role_add(name).await?;
            out.changes.push(format!("role {name}: created"));
        }
    }
    for role in &plan.roles {
        let have = client.role_get(role.name.as_str()).await?.permissions();
        for p in &have {
            if !role.grants.iter().any(|g| same(g, p)) {
                let key = p.key().to_vec();
                let opts = etcd_client::RoleRevokePermissionOptions::new()
                    .with_range_end(p.range_end().to_vec());
                client
                    .role_revoke_permission(role.name.as_str(), key, Some(opts))
                    .await?;
                out.changes.push(format!(
                    "role {}: -{}",
                    role.name,
                    String::from_utf8_lossy(p.key())
                ));
            }
        }
        for grant in &role.grants {
            if !have.iter().any(|h| same(grant, h)) {
                client
                    .role_grant_permission(role.name.as_str(), to_permission(grant))
                    .await?;
                let (access, range) = grant;
                out.changes
                    .push(format!("role {}: +{access:?} {range:?}", role.name));
            }
        }
    }
    let existing_users = client.user_list().await?.users().to_vec();
    for u in users {
        if existing_users.iter().any(|e| e == u.name) {
            // Setting a password revokes the user's tokens (a running process would see its
            // requests refused until it authenticates again): only when it differs.
            let current = client
                .auth_client()
                .authenticate(u.name.to_string(), u.password.to_string())
                .await
                .is_ok();
            if !current {
                client.user_change_password(u.name, u.password).await?;
                out.changes.push(format!("user {}: password set", u.name));
            }
        } else {
            client.user_add(u.name, u.password, None).await?;
            out.changes.push(format!("user {}: created", u.name));
        }
        // Granting a role a user already has is a no-op in etcd.
        client.user_grant_role(u.name, u.name).await?;
    }
    client.auth_enable().await?;
    Ok(out)
}

fn kind(access: Access) -> PermissionType {
    match access {
        Access::Read => PermissionType::Read,
        Access::ReadWrite => PermissionType::Readwrite,
    }
}

/// The key and range end etcd stores for a range (an empty end: one key).
fn bounds(range: &Range) -> (Vec<u8>, Vec<u8>) {
    match range {
        Range::Key(k) => (k.as_bytes().to_vec(), Vec::new()),
        Range::Prefix(p) => (p.as_bytes().to_vec(), prefix_end(p.as_bytes())),
    }
}

/// The first key after every key starting with `prefix` (etcd's prefix range end).
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn to_permission((access, range): &(Access, Range)) -> Permission {
    let (key, end) = bounds(range);
    let p = Permission::new(kind(*access), key);
    if end.is_empty() {
        p
    } else {
        p.with_range_end(end)
    }
}

/// Whether etcd's permission `have` is exactly `grant`.
fn same(grant: &(Access, Range), have: &Permission) -> bool {
    let (key, end) = bounds(&grant.1);
    have.key() == key.as_slice()
        && have.range_end() == end.as_slice()
        && have.get_type() == kind(grant.0) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_range_ends_just_after_the_prefix() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    }

    fn plan() -> Plan {
        Plan::new(&["east".to_string(), "south".to_string()])
    }

    #[test]
    fn a_region_writes_only_its_own_keys() {
        let p = plan();
        let east = p.role("quota-region-east").unwrap();
        for own in [
            keys::region_info("east"),
            keys::region_alive("east", "p1"),
            keys::region_release("east", 7),
            keys::region_report("east", 7, "p1"),
        ] {
            assert!(east.may_write(&own), "{own}");
        }
        for theirs in [
            keys::region_info("south"),
            keys::region_alive("south", "p1"),
            keys::region_release("south", 7),
            keys::grant("east", 7),
            keys::grant("south", 7),
            keys::product_ledger(7),
            keys::product_spec(7),
            keys::product_movable(7),
            keys::release_request("east", 7),
            keys::drain("east"),
            keys::home_regions(),
            keys::election(),
            format!("{}/lease-id", keys::election()),
            keys::operation("k"),
            // A region named to look like a prefix of another cannot reach it.
            keys::region_info("east-2"),
        ] {
            assert!(!east.may_write(&theirs), "{theirs}");
        }
    }

    #[test]
    fn a_region_reads_what_it_must_and_not_other_regions_keys() {
        let p = plan();
        let east = p.role("quota-region-east").unwrap();
        for must in [
            keys::product_spec(7),
            keys::product_movable(7),
            keys::grant("east", 7),
            keys::release_request("east", 7),
            keys::drain("east"),
            keys::home_regions(),
        ] {
            assert!(east.may_read(&must), "{must}");
        }
        for not in [
            keys::grant("south", 7),
            keys::release_request("south", 7),
            keys::region_alive("south", "p1"),
            keys::operation("k"),
        ] {
            assert!(!east.may_read(&not), "{not}");
        }
    }

    #[test]
    fn the_coordinator_reads_everything_and_never_writes_a_regions_keys() {
        let p = plan();
        let c = p.role(COORDINATOR_USER).unwrap();
        for owned in [
            keys::product_spec(7),
            keys::product_ledger(7),
            keys::product_movable(7),
            keys::grant("east", 7),
            keys::release_request("south", 7),
            keys::drain("east"),
            keys::operation("k"),
            keys::home_regions(),
            format!("{}/694d", keys::election()),
        ] {
            assert!(c.may_write(&owned), "{owned}");
        }
        for region_owned in [
            keys::region_info("east"),
            keys::region_alive("east", "p1"),
            keys::region_release("east", 7),
            keys::region_report("south", 7, "p1"),
        ] {
            assert!(c.may_read(&region_owned), "{region_owned}");
            assert!(!c.may_write(&region_owned), "{region_owned}");
        }
    }
}

/// Why the bootstrap failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// A region name is not a valid region name.
    #[error("invalid region name: {0}")]
    Region(String),
    /// A credentials file could not be read or created.
    #[error(transparent)]
    Secret(#[from] quota_shared::secret::SecretError),
    /// etcd refused or could not be reached.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
}

/// The file under the credentials directory holding `user`'s password.
pub fn password_file(dir: &std::path::Path, user: &str) -> std::path::PathBuf {
    dir.join(format!("{user}.password"))
}

/// The bootstrap step: creates (once) a password file per user under `dir` — `root`,
/// [`COORDINATOR_USER`], and [`region_user`] of each region, mode 0600 — then connects to
/// etcd (as root once authentication is on, without credentials before) and [`apply`]s the
/// plan for `regions`. Safe to run again: after adding a region, or after replacing a
/// password file (the password in etcd is set to the file's).
pub async fn bootstrap(
    endpoints: &[String],
    ca_pem: Option<Vec<u8>>,
    regions: &[String],
    dir: &std::path::Path,
) -> Result<Applied, BootstrapError> {
    for r in regions {
        quota_shared::model::validate_region_name(r)
            .map_err(|e| BootstrapError::Region(format!("{r}: {e}")))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| quota_shared::secret::SecretError::Write {
        path: dir.display().to_string(),
        source: e,
    })?;
    let root = crate::secret::ensure_secret_file(&password_file(dir, ROOT_USER))?;
    let coordinator = crate::secret::ensure_secret_file(&password_file(dir, COORDINATOR_USER))?;
    let mut region_users = Vec::new();
    for r in regions {
        let user = region_user(r);
        let password = crate::secret::ensure_secret_file(&password_file(dir, &user))?;
        region_users.push((user, password));
    }
    let opts = crate::members::EtcdOptions {
        connect_timeout: std::time::Duration::from_secs(3),
        request_timeout: std::time::Duration::from_secs(10),
        ca_pem,
        ..crate::members::EtcdOptions::default()
    }
    .connect_options();
    let as_root = opts.clone().with_user(ROOT_USER, root.expose().to_string());
    let mut client = match Client::connect(endpoints, Some(as_root)).await {
        Ok(c) => c,
        // Authentication is not on yet (first run): set it up without credentials.
        Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("not enabled") => {
            Client::connect(endpoints, Some(opts)).await?
        }
        Err(e) => return Err(e.into()),
    };
    let mut users = vec![
        User {
            name: ROOT_USER,
            password: root.expose(),
        },
        User {
            name: COORDINATOR_USER,
            password: coordinator.expose(),
        },
    ];
    users.extend(region_users.iter().map(|(name, password)| User {
        name,
        password: password.expose(),
    }));
    Ok(apply(&mut client, &Plan::new(regions), &users).await?)
}
