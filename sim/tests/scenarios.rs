//! Every built-in scenario, every design, at a fixed seed: the run must finish with the
//! invariants holding after every event (the engine checks them; a violation is an error
//! carrying the seed and the trace). No timing is asserted.

use quota_sim::{compare, Design, Scenario};

/// Runs every design of built-in scenario `name` at seed 1.
fn keeps_every_invariant(name: &str) {
    let s = Scenario::load(name).unwrap();
    let c = compare(&s, 1, &Design::ALL).unwrap_or_else(|e| panic!("{name}: {e}"));
    for run in &c.runs {
        assert!(run.sold <= run.total, "{name}/{}", run.design);
        let per_region: u64 = run.quality.regions.iter().map(|r| r.buyers).sum();
        assert_eq!(run.quality.buyers, per_region, "{name}/{}", run.design);
    }
}

/// One test per built-in scenario (they run in parallel), and a check that none is missed.
macro_rules! scenario_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                keeps_every_invariant($name);
            }
        )*

        #[test]
        fn every_builtin_scenario_has_a_test() {
            let mut tested = vec![$($name),*];
            let mut builtin = Scenario::builtin_names();
            tested.sort_unstable();
            builtin.sort_unstable();
            assert_eq!(tested, builtin);
        }
    };
}

scenario_tests! {
    skew => "skew",
    shift => "shift",
    spike => "spike",
    regions_3 => "regions-3",
    regions_10 => "regions-10",
    regions_50 => "regions-50",
    distances_5_40_80 => "distances-5-40-80",
    distances_50_200 => "distances-50-200",
    faults => "faults",
}

#[test]
fn a_seed_replays_exactly() {
    let s = Scenario::load("faults").unwrap();
    let a = compare(&s, 7, &[Design::Escrow]).unwrap();
    let b = compare(&s, 7, &[Design::Escrow]).unwrap();
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    assert_eq!(a.runs[0].events, b.runs[0].events);
}

#[test]
fn the_oracle_sells_every_unit_when_buyers_outnumber_them() {
    let s = Scenario::load("skew").unwrap();
    let c = compare(&s, 1, &[Design::Oracle]).unwrap();
    let o = &c.runs[0];
    assert_eq!(o.sold, o.total);
    assert_eq!(o.quality.fcfs_inversions, 0);
}
