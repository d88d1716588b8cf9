//! Many seeds of a small sale under crashes, partitions, leader failovers and delay spikes:
//! whatever the schedule, every invariant holds after every event, in every design. Only the
//! invariants are asserted, never timings or sale quality.

use quota_sim::{compare, Design, Scenario};

const SEEDS: u64 = 200;

fn small_sale_with_faults() -> Scenario {
    Scenario::parse(
        "many-seed faults",
        r#"{
          "name": "many-seed-faults",
          "total": 150,
          "regions": [
            { "name": "east", "distance_ms": 5, "weight": 70 },
            { "name": "south", "distance_ms": 40, "weight": 20 },
            { "name": "north", "distance_ms": 80, "weight": 10 }
          ],
          "arrivals": { "spike_rate": 400, "spike_secs": 0.2, "rate": 200, "duration_secs": 1.2 },
          "node": { "capacity": 4, "service_ms": 3 },
          "escrow": { "region_lease_ms": 600, "leader_lease_ms": 400 },
          "faults": { "seeded": {
            "crashes": 2, "partitions": 2, "failovers": 1, "spikes": 1,
            "window_s": [0.02, 0.8], "length_ms": [20, 700], "spike_extra_ms": 150
          } }
        }"#,
    )
    .unwrap()
}

/// Runs every design for seeds `from..to` (the seeds are split over tests so they run in
/// parallel).
fn seeds(from: u64, to: u64) {
    let s = small_sale_with_faults();
    for seed in from..to {
        if let Err(e) = compare(&s, seed, &Design::ALL) {
            panic!("seed {seed}: {e}");
        }
    }
}

#[test]
fn invariants_hold_under_seeded_faults_first_quarter() {
    seeds(0, SEEDS / 4);
}

#[test]
fn invariants_hold_under_seeded_faults_second_quarter() {
    seeds(SEEDS / 4, SEEDS / 2);
}

#[test]
fn invariants_hold_under_seeded_faults_third_quarter() {
    seeds(SEEDS / 2, 3 * SEEDS / 4);
}

#[test]
fn invariants_hold_under_seeded_faults_last_quarter() {
    seeds(3 * SEEDS / 4, SEEDS);
}
