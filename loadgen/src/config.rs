//! What a run does: targets, rate schedule, region weights, retry policy, verification sources.
//!
//! Kept free of CLI concerns so benchmark drivers and tests build a [`Config`] directly;
//! the `name=value` list parsers live here because both the CLI and callers use them.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::error::Error;

/// One region node to send buyers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionTarget {
    /// Region name (matches the coordinator's and the `--weights` names).
    pub name: String,
    /// Base URL of its node, e.g. `http://127.0.0.1:8081`.
    pub url: String,
}

/// The coordinator's admin API: sampled for the time series, asked for the audit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorTarget {
    /// Base URL, e.g. `http://127.0.0.1:7070`.
    pub url: String,
    /// Bearer token for `/v1/admin/…`.
    pub token: String,
}

/// Relative demand per region (e.g. 70/20/10). Regions left out get no buyers.
pub use quota_shared::buyers::Weights;

/// A change of weights mid-sale: demand moving between regions is what rebalancing is for.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightShift {
    /// Seconds after the start at which the new weights apply.
    pub at_secs: f64,
    /// Weights from then on.
    pub weights: Weights,
}

/// How the verification logs in to the regions' Postgres servers: never a password in a URL.
#[derive(Debug, Clone, Default)]
pub struct PgAuth {
    /// Region → file holding its Postgres password (first line).
    pub password_files: BTreeMap<String, std::path::PathBuf>,
    /// CA certificate (PEM) of the servers: TLS is then required and verified.
    pub ca_file: Option<std::path::PathBuf>,
}

/// Everything one run needs. Build it directly or through the CLI.
#[derive(Debug, Clone)]
pub struct Config {
    /// Product on sale.
    pub product: i64,
    /// Region nodes, in report order.
    pub regions: Vec<RegionTarget>,
    /// Coordinator to sample and audit (None: no time series, no audit).
    pub coordinator: Option<CoordinatorTarget>,
    /// Region → Postgres URL, to check acknowledged orders and oversell after the run.
    pub pg: BTreeMap<String, String>,
    /// How to log in to those Postgres servers (password files, TLS CA).
    pub pg_auth: PgAuth,
    /// Steady arrival rate, buyers per second.
    pub rate: f64,
    /// Arrival rate during the opening spike, buyers per second.
    pub spike_rate: f64,
    /// Length of the opening spike in seconds.
    pub spike_secs: f64,
    /// Longest the sale is played, in seconds.
    pub duration_secs: f64,
    /// Demand weights at the start (empty: all regions equal).
    pub weights: Weights,
    /// Optional mid-sale change of weights.
    pub shift: Option<WeightShift>,
    /// Extra tries a buyer makes after a 503, 429 or 410.
    pub retries: u32,
    /// Base pause before a retry (jittered ±50 %).
    pub retry_backoff: Duration,
    /// First user id; arrival `i` is user `user_base + i`, so every arrival is a new buyer.
    pub user_base: i64,
    /// Most requests in flight at once; an arrival beyond it is dropped and counted.
    pub concurrency_cap: usize,
    /// Per-request timeout (a timeout is answered as a transport error).
    pub request_timeout: Duration,
    /// Stop once the coordinator reports every unit sold (needs `coordinator`).
    pub stop_on_sellout: bool,
    /// How often the coordinator status is sampled.
    pub sample_every: Duration,
    /// Print the live progress line to stderr.
    pub progress: bool,
}

impl Config {
    /// A config with the documented defaults for `product` sold in `regions`.
    pub fn new(product: i64, regions: Vec<RegionTarget>) -> Config {
        Config {
            product,
            regions,
            coordinator: None,
            pg: BTreeMap::new(),
            pg_auth: PgAuth::default(),
            rate: 2000.0,
            spike_rate: 6000.0,
            spike_secs: 1.0,
            duration_secs: 30.0,
            weights: Weights::new(),
            shift: None,
            retries: 3,
            retry_backoff: Duration::from_millis(50),
            user_base: 1,
            concurrency_cap: 4000,
            request_timeout: Duration::from_secs(10),
            stop_on_sellout: true,
            sample_every: Duration::from_millis(100),
            progress: false,
        }
    }

    /// Checks consistency; a run only starts on a valid config.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |m: String| Err(Error::Config(m));
        if self.regions.is_empty() {
            return bad("at least one --region is needed".into());
        }
        let names: Vec<&str> = self.regions.iter().map(|r| r.name.as_str()).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return bad(format!("region {n} given twice"));
            }
        }
        for (what, v) in [
            ("rate", self.rate),
            ("spike rate", self.spike_rate),
            ("spike seconds", self.spike_secs),
            ("duration", self.duration_secs),
        ] {
            if !v.is_finite() || v < 0.0 {
                return bad(format!("{what} must be a finite number ≥ 0, got {v}"));
            }
        }
        if self.duration_secs <= 0.0 {
            return bad("duration must be > 0".into());
        }
        if self.rate <= 0.0 && (self.spike_rate <= 0.0 || self.spike_secs <= 0.0) {
            return bad("no arrivals: rate and spike are both zero".into());
        }
        if self.concurrency_cap == 0 {
            return bad("concurrency cap must be ≥ 1".into());
        }
        check_weights(&self.weights, &names, "--weights")?;
        if let Some(shift) = &self.shift {
            if !shift.at_secs.is_finite() || shift.at_secs < 0.0 {
                return bad(format!("shift time must be ≥ 0, got {}", shift.at_secs));
            }
            if shift.weights.is_empty() {
                return bad("--shift-weights must name at least one region".into());
            }
            check_weights(&shift.weights, &names, "--shift-weights")?;
        }
        for region in self.pg.keys() {
            if !names.contains(&region.as_str()) {
                return bad(format!("--pg names unknown region {region}"));
            }
        }
        for region in self.pg_auth.password_files.keys() {
            if !self.pg.contains_key(region) {
                return bad(format!(
                    "--pg-password-file names {region}, which has no --pg"
                ));
            }
        }
        Ok(())
    }

    /// Region names in report order.
    pub fn region_names(&self) -> Vec<String> {
        self.regions.iter().map(|r| r.name.clone()).collect()
    }
}

fn check_weights(w: &Weights, names: &[&str], flag: &str) -> Result<(), Error> {
    for region in w.keys() {
        if !names.contains(&region.as_str()) {
            return Err(Error::Config(format!(
                "{flag} names unknown region {region}"
            )));
        }
    }
    if !w.is_empty() && w.values().all(|&v| v == 0) {
        return Err(Error::Config(format!("{flag}: every weight is zero")));
    }
    Ok(())
}

/// Parses one `name=value` item (`east=http://…`, `east=70`).
pub fn parse_pair(s: &str) -> Result<(String, String), Error> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| Error::Config(format!("expected name=value, got {s:?}")))?;
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !valid {
        return Err(Error::Config(format!("bad region name {name:?} (a-z0-9-)")));
    }
    if value.trim().is_empty() {
        return Err(Error::Config(format!("empty value for {name}")));
    }
    Ok((name.to_string(), value.trim().to_string()))
}

/// Parses `east=70,south=20,north=10` into weights.
pub fn parse_weights(s: &str) -> Result<Weights, Error> {
    let mut w = Weights::new();
    for item in s.split(',').filter(|i| !i.trim().is_empty()) {
        let (name, value) = parse_pair(item)?;
        let v: u32 = value.parse().map_err(|_| {
            Error::Config(format!("weight of {name} is not a whole number: {value}"))
        })?;
        if w.insert(name.clone(), v).is_some() {
            return Err(Error::Config(format!("weight of {name} given twice")));
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let regions = ["east", "south", "north"]
            .iter()
            .map(|n| RegionTarget {
                name: n.to_string(),
                url: format!("http://{n}"),
            })
            .collect();
        Config::new(1, regions)
    }

    #[test]
    fn parses_weights() {
        let w = parse_weights("east=70, south=20,north=10").unwrap();
        assert_eq!(w["east"], 70);
        assert_eq!(w["south"], 20);
        assert_eq!(w["north"], 10);
        assert!(parse_weights("east=x").is_err());
        assert!(parse_weights("east").is_err());
        assert!(parse_weights("East=1").is_err());
        assert!(parse_weights("east=1,east=2").is_err());
    }

    #[test]
    fn parses_pairs_with_urls() {
        let (n, v) = parse_pair("east=http://127.0.0.1:80/x?a=b").unwrap();
        assert_eq!(n, "east");
        assert_eq!(v, "http://127.0.0.1:80/x?a=b");
    }

    #[test]
    fn validates() {
        assert!(cfg().validate().is_ok());
        let mut c = cfg();
        c.weights = parse_weights("west=1").unwrap();
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.weights = parse_weights("east=0").unwrap();
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.rate = 0.0;
        c.spike_secs = 0.0;
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.regions.push(c.regions[0].clone());
        assert!(c.validate().is_err());
        let mut c = cfg();
        c.pg.insert("west".into(), "postgres://x".into());
        assert!(c.validate().is_err());
    }
}
