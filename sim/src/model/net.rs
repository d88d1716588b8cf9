//! The network: every link a one-way delay with jitter. Regions sit around a hub (etcd and the
//! coordinator), region `i` at `d_i` from it; two regions reach each other through the hub
//! (`d_i + d_j`). A region's etcd link can be partitioned (messages sent over it are lost;
//! the session re-reads everything on heal, as the real one does) or slowed by a spike.

use crate::engine::Micros;
use crate::rng::Rng;

/// Links, their base delays and their current faults.
pub(crate) struct Net {
    /// One-way delay region → hub, µs.
    hub: Vec<f64>,
    /// One-way delay buyer → its own region, µs.
    local: f64,
    /// One-way delay coordinator → etcd, µs.
    coord: f64,
    jitter: f64,
    /// Open partitions per region (overlapping faults nest).
    partitioned: Vec<u32>,
    /// Extra delay per region from open spikes, µs.
    extra: Vec<u64>,
}

impl Net {
    pub(crate) fn new(hub_ms: &[f64], local_ms: f64, coord_ms: f64, jitter: f64) -> Net {
        Net {
            hub: hub_ms.iter().map(|d| d.max(0.0) * 1e3).collect(),
            local: local_ms.max(0.0) * 1e3,
            coord: coord_ms.max(0.0) * 1e3,
            jitter: if jitter.is_finite() {
                jitter.max(0.0)
            } else {
                0.0
            },
            partitioned: vec![0; hub_ms.len()],
            extra: vec![0; hub_ms.len()],
        }
    }

    fn jittered(&self, rng: &mut Rng, base: f64) -> Micros {
        (base * (1.0 + self.jitter * rng.unit())).round() as Micros
    }

    /// Region `r` ↔ etcd, one way; `None` while partitioned (the message is lost).
    pub(crate) fn region_etcd(&self, rng: &mut Rng, r: u16) -> Option<Micros> {
        let r = usize::from(r);
        if self.partitioned[r] > 0 {
            return None;
        }
        Some(self.jittered(rng, self.hub[r]) + self.extra[r])
    }

    /// Coordinator ↔ etcd, one way.
    pub(crate) fn coord_etcd(&self, rng: &mut Rng) -> Micros {
        self.jittered(rng, self.coord)
    }

    /// A buyer at home in `home` ↔ the region `target` serving it, one way: local, plus the
    /// way through the hub when it is served elsewhere (the central counter's remote buyers).
    pub(crate) fn buyer(&self, rng: &mut Rng, home: u16, target: u16) -> Micros {
        let far = if home == target {
            0.0
        } else {
            self.hub[usize::from(home)] + self.hub[usize::from(target)]
        };
        self.jittered(rng, self.local + far)
    }

    /// A partition of `r` starts.
    pub(crate) fn partition(&mut self, r: u16) {
        self.partitioned[usize::from(r)] += 1;
    }

    /// A partition of `r` ends; true when the link is up again.
    pub(crate) fn heal(&mut self, r: u16) -> bool {
        let p = &mut self.partitioned[usize::from(r)];
        *p = p.saturating_sub(1);
        *p == 0
    }

    /// A delay spike of `extra` µs on `r`'s etcd link starts (`on`) or ends.
    pub(crate) fn spike(&mut self, r: u16, extra: u64, on: bool) {
        let e = &mut self.extra[usize::from(r)];
        *e = if on {
            *e + extra
        } else {
            e.saturating_sub(extra)
        };
    }
}
