//! The faults of one nemesis run, drawn from its seed: pure, so a seed names the same schedule
//! every time (a failing seed reproduces its faults in the same order at the same offsets).

use std::fmt;
use std::time::Duration;

/// One fault, with what it hits. Each is healed by the nemesis before the next one starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `kill -9` a region's node process, restart it after `down`.
    KillNode(String),
    /// `kill -9` a region's Redis, restart it (empty) after `down`.
    KillRedis(String),
    /// `kill -9` a region's Postgres (postmaster and backends), restart it after `down`.
    KillPostgres(String),
    /// `FLUSHALL` on a region's Redis.
    FlushRedis(String),
    /// `kill -9` the leading coordinator, restart it after `down`.
    KillLeader,
    /// `SIGSTOP` the leading coordinator for longer than its lease, then `SIGCONT`.
    PauseLeader,
    /// Cut a region off from etcd (its proxy link drops every byte) for `down`.
    PartitionRegion(String),
    /// Cut a region's node off from its Postgres (every byte dropped) for `down`.
    PartitionPostgres(String),
    /// Cut the leading coordinator off from etcd for `down`.
    PartitionLeader,
    /// `kill -9` every etcd member (the whole store), restart them after `down`.
    KillEtcd,
    /// `kill -9` one etcd member (index into the members), restart it after `down`: the
    /// others keep a quorum.
    KillEtcdMember(usize),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::KillNode(r) => write!(f, "kill -9 node-{r}"),
            Fault::KillRedis(r) => write!(f, "kill -9 redis-{r}"),
            Fault::KillPostgres(r) => write!(f, "kill -9 pg-{r}"),
            Fault::FlushRedis(r) => write!(f, "FLUSHALL redis-{r}"),
            Fault::KillLeader => f.write_str("kill -9 leader"),
            Fault::PauseLeader => f.write_str("SIGSTOP leader past its lease"),
            Fault::PartitionRegion(r) => write!(f, "partition {r} from etcd"),
            Fault::PartitionPostgres(r) => write!(f, "partition node-{r} from pg-{r}"),
            Fault::PartitionLeader => f.write_str("partition the leader from etcd"),
            Fault::KillEtcd => f.write_str("kill -9 etcd (every member)"),
            Fault::KillEtcdMember(i) => write!(f, "kill -9 etcd member n{}", i + 1),
        }
    }
}

/// A fault at an offset from the start of the load, down for a while.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    /// When it strikes, from the start of the load.
    pub at: Duration,
    /// What it hits.
    pub fault: Fault,
    /// How long the thing stays down (or cut off, or paused) before the nemesis heals it.
    pub down: Duration,
}

/// SplitMix64: a tiny, stable generator, so a seed means the same schedule in every build.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The schedule of a run of `load` over `regions` on `etcd_members` etcd members: a fault 1–3 s
/// after the last one healed (the first 2 s in), each down 1–3 s (a pause always outlasts the
/// leader's 2 s lease), the last one healed before the load ends. With several members, three
/// in four etcd faults kill one member and one in four the whole store.
pub fn schedule(
    seed: u64,
    regions: &[String],
    etcd_members: usize,
    load: Duration,
) -> Vec<Planned> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let mut at = 2_000u64;
    let end = u64::try_from(load.as_millis()).unwrap_or(u64::MAX);
    loop {
        let kind = rng.between(0, 9);
        let region =
            regions[usize::try_from(rng.next() % regions.len() as u64).unwrap_or(0)].clone();
        let mut down = rng.between(1_000, 3_000);
        let fault = match kind {
            0 => Fault::KillNode(region),
            1 => Fault::KillRedis(region),
            2 => Fault::KillPostgres(region),
            3 => Fault::FlushRedis(region),
            4 => Fault::KillLeader,
            5 => {
                down = down.max(3_000);
                Fault::PauseLeader
            }
            6 => Fault::PartitionRegion(region),
            7 => Fault::PartitionPostgres(region),
            8 => {
                down = down.max(3_000);
                Fault::PartitionLeader
            }
            _ if etcd_members > 1 && rng.between(0, 3) > 0 => Fault::KillEtcdMember(
                usize::try_from(rng.next() % etcd_members as u64).unwrap_or(0),
            ),
            _ => Fault::KillEtcd,
        };
        if at + down + 1_000 > end {
            return out;
        }
        out.push(Planned {
            at: Duration::from_millis(at),
            fault,
            down: Duration::from_millis(down),
        });
        at += down + rng.between(1_000, 3_000);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions() -> Vec<String> {
        ["east", "south", "north"].map(String::from).to_vec()
    }

    #[test]
    fn a_seed_names_one_schedule() {
        let a = schedule(7, &regions(), 3, Duration::from_secs(60));
        assert_eq!(a, schedule(7, &regions(), 3, Duration::from_secs(60)));
        assert_ne!(a, schedule(8, &regions(), 3, Duration::from_secs(60)));
        assert!(a.len() >= 8, "{a:?}");
    }

    /// The suite's short run (`tests/tests/nemesis.rs`) uses seed 4 because its 20 s draw
    /// kills one etcd member and, later, the whole store.
    #[test]
    fn the_suites_seed_kills_an_etcd_member_and_the_whole_store() {
        let s = schedule(4, &regions(), 3, Duration::from_secs(20));
        assert!(
            s.iter()
                .any(|p| matches!(p.fault, Fault::KillEtcdMember(_))),
            "{s:?}"
        );
        assert!(s.iter().any(|p| p.fault == Fault::KillEtcd), "{s:?}");
    }

    #[test]
    fn faults_never_overlap_and_end_before_the_load() {
        for seed in 0..200 {
            let s = schedule(seed, &regions(), 3, Duration::from_secs(30));
            for w in s.windows(2) {
                assert!(w[0].at + w[0].down < w[1].at, "seed {seed}: {w:?}");
            }
            if let Some(last) = s.last() {
                assert!(last.at + last.down < Duration::from_secs(30));
            }
            for p in &s {
                if let Fault::KillEtcdMember(i) = p.fault {
                    assert!(i < 3, "seed {seed}: member {i} of 3");
                }
                if p.fault == Fault::PauseLeader {
                    assert!(p.down >= Duration::from_secs(3), "outlasts the 2 s lease");
                }
            }
        }
    }
}
