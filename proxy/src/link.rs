//! A link's static config and its fault modes, parsed from the CLI's
//! `id=east-etcd,listen=127.0.0.1:7001,upstream=127.0.0.1:2379,latency_ms=40,jitter_ms=5`.

use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Upper bound on latency and jitter, so a typo cannot stall a test suite for hours.
pub(crate) const MAX_DELAY_MS: u64 = 60_000;

/// What a link does to traffic; switched at runtime to inject faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Forward bytes after the configured delay: the healthy link.
    #[default]
    Pass,
    /// Keep connections open but drop every byte both ways: what a partition looks like to TCP.
    Blackhole,
    /// Close new and existing connections with RST: a crashed peer or a firewall reject.
    Reset,
}

impl FromStr for Mode {
    type Err = LinkParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pass" => Ok(Mode::Pass),
            "blackhole" => Ok(Mode::Blackhole),
            "reset" => Ok(Mode::Reset),
            _ => Err(LinkParseError(format!(
                "mode {s:?}: expected pass, blackhole or reset"
            ))),
        }
    }
}

/// One proxied link's config: where it listens, where it forwards, how far away upstream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Stable name used by the control API (`/links/{id}`).
    pub id: String,
    /// Where clients connect (port 0 picks a free one; [`crate::Proxy::bind`] fills it in).
    pub listen: SocketAddr,
    /// The real service behind the link.
    pub upstream: SocketAddr,
    /// One-way delay added to every chunk, each direction.
    pub latency_ms: u64,
    /// Uniform ± spread around `latency_ms`; never reorders bytes.
    pub jitter_ms: u64,
    /// The fault mode the link starts in.
    pub mode: Mode,
}

/// A malformed `--link` spec; the message says which part and why.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid link: {0}")]
pub struct LinkParseError(pub String);

fn err(msg: impl Into<String>) -> LinkParseError {
    LinkParseError(msg.into())
}

/// Checks a delay against [`MAX_DELAY_MS`]; shared by the CLI and the control API.
pub(crate) fn check_delay(name: &str, ms: u64) -> Result<u64, LinkParseError> {
    if ms > MAX_DELAY_MS {
        return Err(err(format!("{name} {ms} exceeds {MAX_DELAY_MS}")));
    }
    Ok(ms)
}

impl FromStr for Link {
    type Err = LinkParseError;
    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        let (mut id, mut listen, mut upstream) = (None, None, None);
        let (mut latency_ms, mut jitter_ms, mut mode) = (0, 0, Mode::Pass);
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| err(format!("{part:?} is not key=value")))?;
            let addr = |v: &str| {
                v.parse::<SocketAddr>()
                    .map_err(|e| err(format!("{k}={v}: {e}")))
            };
            let ms = |v: &str| v.parse::<u64>().map_err(|e| err(format!("{k}={v}: {e}")));
            match k {
                "id" if !v.is_empty() => id = Some(v.to_string()),
                "listen" => listen = Some(addr(v)?),
                "upstream" => upstream = Some(addr(v)?),
                "latency_ms" => latency_ms = check_delay(k, ms(v)?)?,
                "jitter_ms" => jitter_ms = check_delay(k, ms(v)?)?,
                "mode" => mode = v.parse()?,
                _ => return Err(err(format!("unknown or empty key {part:?}"))),
            }
        }
        Ok(Link {
            id: id.ok_or_else(|| err(format!("{spec:?} has no id=")))?,
            listen: listen.ok_or_else(|| err(format!("{spec:?} has no listen=")))?,
            upstream: upstream.ok_or_else(|| err(format!("{spec:?} has no upstream=")))?,
            latency_ms,
            jitter_ms,
            mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_full_spec_and_rejects_bad_ones() {
        let l: Link =
            "id=e,listen=127.0.0.1:7001,upstream=127.0.0.1:2379,latency_ms=40,jitter_ms=5"
                .parse()
                .unwrap();
        assert_eq!(
            (l.id.as_str(), l.latency_ms, l.jitter_ms, l.mode),
            ("e", 40, 5, Mode::Pass)
        );
        for bad in [
            "listen=127.0.0.1:1,upstream=127.0.0.1:2",
            "id=a,listen=nope,upstream=127.0.0.1:2",
            "id=a,listen=127.0.0.1:1,upstream=127.0.0.1:2,latency_ms=-1",
            "id=a,listen=127.0.0.1:1,upstream=127.0.0.1:2,latency_ms=999999",
            "id=a,listen=127.0.0.1:1,upstream=127.0.0.1:2,colour=red",
            "id=a,listen=127.0.0.1:1,upstream=127.0.0.1:2,mode=slow",
            "id=a,listen",
        ] {
            assert!(bad.parse::<Link>().is_err(), "{bad}");
        }
    }
}
