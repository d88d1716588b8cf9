//! Rate limits, the first defence: without them a spike reaches Redis and Postgres whole.
//!
//! Three token buckets (governor, GCRA): one global, one per client IP, one per user. A limit of
//! 0 disables that bucket (a local cluster disables the per-IP one: every client there is
//! 127.0.0.1). The keyed buckets are pruned periodically so memory stays bounded.
//!
//! The per-IP bucket's key is the client's address: the TCP peer, unless the peer is one of
//! the `--trusted-proxies` ([`TrustedProxies::client_ip`]); behind a load balancer the peer is
//! the balancer, and every buyer would otherwise share its one bucket.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;

use axum::http::HeaderMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;

use crate::error::ApiError;

/// The reverse proxies (`--trusted-proxies`) whose `X-Forwarded-For` is believed. Empty: the
/// header is ignored, the TCP peer is the client.
#[derive(Debug, Clone, Default)]
pub(crate) struct TrustedProxies {
    nets: Vec<IpNet>,
}

impl TrustedProxies {
    /// Trusts the proxies inside `nets`.
    pub(crate) fn new(nets: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies { nets }
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&ip))
    }

    /// The address the per-IP rate limit keys on. The TCP `peer`, unless the peer is a trusted
    /// proxy: then the right-most `X-Forwarded-For` entry that is not itself trusted, walking
    /// right to left — each trusted hop appends the address it received the request from, so
    /// everything left of the first untrusted entry was written by the client and may be
    /// forged. A chain of trusted proxies only yields its left-most entry (the request came
    /// from inside). An unparsable entry reached on the walk, an empty or non-ASCII header,
    /// or no header at all fall back to the peer. Several header lines are one list, in order.
    /// IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`) count as the IPv4 address.
    pub(crate) fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if self.nets.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let mut entries = Vec::new();
        for line in headers.get_all("x-forwarded-for") {
            let Ok(line) = line.to_str() else {
                return peer;
            };
            entries.extend(line.split(','));
        }
        let mut left_most = None;
        for raw in entries.iter().rev() {
            let Some(ip) = forwarded_ip(raw) else {
                return peer;
            };
            if !self.trusts(ip) {
                return ip;
            }
            left_most = Some(ip);
        }
        left_most.unwrap_or(peer)
    }
}

/// One `X-Forwarded-For` entry: an address, or an address with a port (`1.2.3.4:5`,
/// `[2001:db8::1]:5`, as some balancers write it).
fn forwarded_ip(raw: &str) -> Option<IpAddr> {
    let raw = raw.trim();
    raw.parse::<IpAddr>()
        .or_else(|_| raw.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// The node's buckets.
pub(crate) struct Limits {
    global: Option<DefaultDirectRateLimiter>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_user: Option<DefaultKeyedRateLimiter<i64>>,
}

fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

fn refused(not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> ApiError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    metrics::counter!("quota_rate_limited_total").increment(1);
    ApiError::RateLimited {
        retry_after_s: wait.as_secs_f64().ceil() as u64,
    }
}

impl Limits {
    /// Builds the buckets: global at `global` rps (burst = 1 s worth), per IP and per user at
    /// their rates with a burst of twice the rate (at least 4 for users, so a double click and
    /// a retry are not punished).
    pub(crate) fn new(global: u32, per_ip: u32, per_user: u32) -> Limits {
        Limits {
            global: quota(global, global).map(RateLimiter::direct),
            per_ip: quota(per_ip, per_ip.saturating_mul(2)).map(RateLimiter::keyed),
            per_user: quota(per_user, per_user.saturating_mul(2).max(4)).map(RateLimiter::keyed),
        }
    }

    /// Global and per-IP buckets: checked before the body is even parsed.
    pub(crate) fn check_request(&self, ip: IpAddr) -> Result<(), ApiError> {
        if let Some(g) = &self.global {
            g.check().map_err(refused)?;
        }
        if let Some(l) = &self.per_ip {
            l.check_key(&ip).map_err(refused)?;
        }
        Ok(())
    }

    /// Per-user bucket: checked once the user id is known.
    pub(crate) fn check_user(&self, user_id: i64) -> Result<(), ApiError> {
        if let Some(l) = &self.per_user {
            l.check_key(&user_id).map_err(refused)?;
        }
        Ok(())
    }

    /// Forgets keys whose buckets are full again (bounded memory under many distinct users).
    pub(crate) fn prune(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_user {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_bucket_refuses_after_burst_and_says_when() {
        let l = Limits::new(0, 0, 1);
        for _ in 0..4 {
            l.check_user(7).unwrap();
        }
        match l.check_user(7) {
            Err(ApiError::RateLimited { retry_after_s }) => assert!(retry_after_s >= 1),
            other => panic!("expected rate limit, got {other:?}"),
        }
        l.check_user(8).unwrap();
    }

    fn proxies(nets: &[&str]) -> TrustedProxies {
        TrustedProxies::new(nets.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn xff(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append("x-forwarded-for", l.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Without trusted proxies, or from a peer that is not one, the header is ignored.
    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let h = xff(&["203.0.113.7"]);
        assert_eq!(
            TrustedProxies::default().client_ip(ip("10.0.0.1"), &h),
            ip("10.0.0.1")
        );
        let t = proxies(&["10.0.0.0/8"]);
        assert_eq!(t.client_ip(ip("192.0.2.1"), &h), ip("192.0.2.1"));
        assert_eq!(t.client_ip(ip("10.0.0.1"), &h), ip("203.0.113.7"));
        // A trusted peer that sent no header is the client itself.
        assert_eq!(
            t.client_ip(ip("10.0.0.1"), &HeaderMap::new()),
            ip("10.0.0.1")
        );
    }

    /// Entries a client wrote itself (left of the first untrusted one) never count.
    #[test]
    fn spoofed_left_most_entries_are_ignored() {
        let t = proxies(&["10.0.0.0/8", "127.0.0.1/32"]);
        // The client sent "1.1.1.1, 2.2.2.2"; the balancer appended the real peer.
        let h = xff(&["1.1.1.1, 2.2.2.2, 198.51.100.9"]);
        assert_eq!(t.client_ip(ip("10.1.2.3"), &h), ip("198.51.100.9"));
        // Two trusted hops: the inner one is skipped too.
        let h = xff(&["1.1.1.1, 198.51.100.9, 10.9.9.9"]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("198.51.100.9"));
        // Spoofed garbage left of the real client is never reached.
        let h = xff(&["not-an-ip, 198.51.100.9"]);
        assert_eq!(t.client_ip(ip("10.1.2.3"), &h), ip("198.51.100.9"));
        // Several header lines are one list, in order.
        let h = xff(&["1.1.1.1", "198.51.100.9, 10.2.2.2"]);
        assert_eq!(t.client_ip(ip("10.1.2.3"), &h), ip("198.51.100.9"));
    }

    /// A chain of only trusted proxies: the left-most entry is the client.
    #[test]
    fn an_all_trusted_chain_yields_its_left_most_entry() {
        let t = proxies(&["10.0.0.0/8"]);
        let h = xff(&["10.0.0.5, 10.0.0.6"]);
        assert_eq!(t.client_ip(ip("10.0.0.7"), &h), ip("10.0.0.5"));
    }

    /// An entry that is not an address, reached on the walk, falls back to the peer.
    #[test]
    fn garbage_falls_back_to_the_peer() {
        let t = proxies(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.1");
        for bad in [
            "",
            " ",
            "garbage",
            "1.2.3.4, ",
            "1.2.3.4,,",
            "300.1.1.1",
            "unknown",
        ] {
            assert_eq!(t.client_ip(peer, &xff(&[bad])), peer, "{bad:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            axum::http::HeaderValue::from_bytes(b"\xff1.2.3.4").unwrap(),
        );
        assert_eq!(t.client_ip(peer, &h), peer);
    }

    /// IPv6 peers, entries and CIDRs; ports; IPv4-mapped addresses count as IPv4.
    #[test]
    fn ipv6_ports_and_mapped_addresses() {
        let t = proxies(&["fd00::/8", "127.0.0.1/32"]);
        let h = xff(&["2001:db8::1, fd00::2"]);
        assert_eq!(t.client_ip(ip("fd00::1"), &h), ip("2001:db8::1"));
        let h = xff(&["[2001:db8::2]:4711, 192.0.2.5:80"]);
        assert_eq!(t.client_ip(ip("fd00::1"), &h), ip("192.0.2.5"));
        // A dual-stack listener sees 127.0.0.1 as ::ffff:127.0.0.1.
        let h = xff(&["::ffff:192.0.2.9"]);
        assert_eq!(t.client_ip(ip("::ffff:127.0.0.1"), &h), ip("192.0.2.9"));
        // An untrusted IPv6 peer: header ignored.
        assert_eq!(t.client_ip(ip("2001:db8::9"), &h), ip("2001:db8::9"));
    }

    #[test]
    fn zero_disables() {
        let l = Limits::new(0, 0, 0);
        for _ in 0..10_000 {
            l.check_request("127.0.0.1".parse().unwrap()).unwrap();
            l.check_user(1).unwrap();
        }
    }
}
