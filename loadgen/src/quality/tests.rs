//! The loadgen side of the shared measures: units moved from samples, what is reported as not
//! measured, and that a run's records reach the shared definitions unchanged.

use std::time::{Duration, Instant};

use super::*;
use crate::recorder::tests::try_at;
use crate::recorder::Recorder;
use crate::series::RegionSample;
use quota_shared::quality::FinalAnswer;

fn sample(t_s: f64, granted: &[(&str, i64)]) -> Sample {
    Sample {
        t_s,
        total: 100,
        pool: 0,
        // The coordinator's writes grow by 3 per second of samples.
        coordinator_writes: (t_s * 6.0) as i64,
        regions: granted
            .iter()
            .map(|(n, g)| {
                let r = RegionSample {
                    granted: *g,
                    ..RegionSample::default()
                };
                (n.to_string(), r)
            })
            .collect(),
    }
}

#[test]
fn units_moved_is_the_growth_of_grants_after_the_first_sample() {
    let start = sample(0.0, &[("east", 50), ("south", 50)]);
    let mid = sample(1.0, &[("east", 70), ("south", 50)]);
    let end = sample(2.0, &[("east", 80), ("south", 60)]);
    assert_eq!(units_moved(&[start.clone(), mid, end]), Some(30 + 10));
    assert_eq!(units_moved(&[start.clone(), start.clone()]), Some(0));
    assert_eq!(units_moved(&[start]), None);
    assert_eq!(units_moved(&[]), None);
}

/// A two-region run: east sells out at once, a south buyer waits on 503 awaiting_stock and
/// gives up although a later east buyer still got a unit (an FCFS inversion), and an early
/// 410 that a later purchase proves false.
fn recorded() -> Recorded {
    let t0 = Instant::now();
    let rec = Recorder::new(t0, 2);
    let ms = Duration::from_millis;
    // Buyer 1, east, arrives at 0 ms: 201 at 10 ms.
    let a = try_at(t0, 0, 201, 10, 10);
    rec.request(&a, Some("o1".into()));
    rec.outcome(&a, t0, 1);
    // Buyer 2, south, arrives at 5 ms: 410 at 20 ms (false), then 503 awaiting at 300 ms.
    let b1 = try_at(t0, 1, 410, 20, 15);
    rec.request(&b1, None);
    let b2 = try_at(t0, 1, 503, 300, 20);
    rec.request(&b2, None);
    rec.outcome(&b2, t0 + ms(5), 2);
    // Buyer 3, east, arrives at 100 ms: 201 at 150 ms (sent at 100 ms).
    let c = try_at(t0, 0, 201, 150, 50);
    rec.request(&c, Some("o2".into()));
    rec.outcome(&c, t0 + ms(100), 1);
    rec.finish()
}

#[test]
fn a_run_is_measured_with_the_shared_definitions() {
    let names = ["east".to_string(), "south".to_string()];
    let r = recorded();
    let books = Books { total: 2, sold: 2 };
    let samples = [
        sample(0.0, &[("east", 1), ("south", 1)]),
        sample(0.5, &[("east", 2), ("south", 1)]),
    ];
    let q = measure(&names, &r, Some(books), &samples, 0.3);
    let m = &q.measures;
    assert_eq!((m.buyers, m.orders), (3, 2));
    assert_eq!(
        m.fcfs_inversions, 1,
        "south's buyer arrived before east's last winner"
    );
    assert_eq!(
        m.false_sold_outs, 1,
        "a purchase sent at 100 ms succeeded after the 410"
    );
    assert_eq!(m.awaiting_answers, 1);
    assert!((m.sellout_s.unwrap() - 0.15).abs() < 1e-9);
    assert_eq!(q.stranded(), Some(0));
    assert_eq!(q.units_moved(), Some(1));
    // 3 writes between the samples (0 → 3), over the 0.3 s the sale lasted.
    assert!((q.ledger_writes_per_s().unwrap() - 10.0).abs() < 1e-9);
    assert_eq!(m.regions[1].buyers, 1);
    assert!((m.regions[1].p99_ms - 295.0).abs() < 1e-6);
    assert_eq!(
        r.buyers.iter().map(|b| b.answer).collect::<Vec<_>>(),
        [
            FinalAnswer::Order,
            FinalAnswer::AwaitingStock,
            FinalAnswer::Order
        ]
    );
}

#[test]
fn unmeasured_measures_are_null_not_zero_and_survive_a_round_trip() {
    let names = ["east".to_string(), "south".to_string()];
    let q = measure(&names, &recorded(), None, &[], 0.3);
    assert_eq!(q.stranded(), None);
    assert_eq!(q.units_moved(), None);
    assert_eq!(q.measures.sellout_s, None, "no books: sell-out unknown");
    let json = serde_json::to_value(&q).unwrap();
    for key in [
        "stranded",
        "units_moved",
        "ledger_writes_per_s",
        "sellout_s",
    ] {
        assert!(json[key].is_null(), "{key}: {json}");
    }
    assert_eq!(json["fcfs_inversions"], 1);
    assert_eq!(json["regions"][0]["region"], "east");
    let back: Quality = serde_json::from_value(json).unwrap();
    assert_eq!(back, q);
    assert_eq!(Quality::default().stranded(), None);
}
