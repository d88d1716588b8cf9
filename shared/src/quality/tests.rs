//! Each measure on hand-made sales whose answer is known, plus properties over random ones.

use super::*;
use proptest::prelude::*;

fn buyer(region: usize, arrived_s: f64, answered_s: f64, answer: FinalAnswer) -> BuyerRecord {
    BuyerRecord {
        region,
        arrived_s,
        answered_s,
        answer,
        attempts: 1,
    }
}

fn answer(sent_s: f64, answered_s: f64, status: u16) -> AnswerRecord {
    AnswerRecord {
        region: 0,
        sent_s,
        answered_s,
        status,
        awaiting_stock: status == 503,
    }
}

#[test]
fn statuses_map_to_final_answers() {
    assert_eq!(FinalAnswer::from_status(201, false), FinalAnswer::Order);
    assert_eq!(FinalAnswer::from_status(410, false), FinalAnswer::SoldOut);
    assert_eq!(
        FinalAnswer::from_status(503, true),
        FinalAnswer::AwaitingStock
    );
    assert_eq!(
        FinalAnswer::from_status(503, false),
        FinalAnswer::Unavailable
    );
    assert_eq!(
        FinalAnswer::from_status(429, false),
        FinalAnswer::Unavailable
    );
    for s in [400, 403, 404, 409, 421] {
        assert_eq!(
            FinalAnswer::from_status(s, false),
            FinalAnswer::Refused,
            "{s}"
        );
    }
    assert_eq!(FinalAnswer::from_status(0, false), FinalAnswer::Failed);
    assert_eq!(FinalAnswer::from_status(500, false), FinalAnswer::Failed);
    assert!(!FinalAnswer::Refused.turned_away());
    assert!(!FinalAnswer::Order.turned_away());
}

#[test]
fn a_central_counter_in_arrival_order_has_no_inversion() {
    // Three units, five buyers served strictly in arrival order.
    let b = [
        buyer(0, 0.0, 0.01, FinalAnswer::Order),
        buyer(1, 0.1, 0.11, FinalAnswer::Order),
        buyer(0, 0.2, 0.21, FinalAnswer::Order),
        buyer(1, 0.3, 0.31, FinalAnswer::SoldOut),
        buyer(0, 0.4, 0.41, FinalAnswer::SoldOut),
    ];
    assert_eq!(fcfs_inversions(&b), 0);
    assert_eq!(sellout_time(3, 3, &b), Some(0.21));
}

#[test]
fn a_buyer_turned_away_before_a_later_winner_is_an_inversion() {
    let b = [
        buyer(0, 0.0, 0.01, FinalAnswer::Order),
        buyer(1, 0.1, 1.50, FinalAnswer::AwaitingStock),
        buyer(2, 0.15, 0.2, FinalAnswer::Refused),
        buyer(0, 0.2, 0.21, FinalAnswer::Order),
        buyer(1, 0.3, 0.31, FinalAnswer::SoldOut),
    ];
    // Only the 503 buyer: the refused one was never eligible, the 410 came after.
    assert_eq!(fcfs_inversions(&b), 1);
    assert_eq!(sellout_time(3, 2, &b), None);
}

#[test]
fn false_sold_outs_are_410s_before_the_last_successful_send() {
    let a = [
        answer(0.0, 0.1, 410), // false: a purchase sent at 0.5 still succeeded
        answer(0.5, 0.6, 201),
        answer(0.55, 0.7, 410), // sent before 0.5? no: answered after the last 201 was sent
        answer(0.2, 0.3, 503),
    ];
    assert_eq!(false_sold_outs(&a), 1);
}

#[test]
fn stranded_counts_only_when_buyers_were_refused_at_the_end() {
    let refused_late = [answer(9.0, 9.5, 410)];
    let refused_early = [answer(1.0, 1.5, 410)];
    assert_eq!(stranded(100, 90, &refused_late, 10.0), 10);
    assert_eq!(stranded(100, 90, &refused_early, 10.0), 0);
    assert_eq!(stranded(100, 100, &refused_late, 10.0), 0);
}

#[test]
fn percentiles_are_nearest_rank() {
    let v: Vec<f64> = (1..=100).map(f64::from).collect();
    assert_eq!(percentile(&v, 0.5), 50.0);
    assert_eq!(percentile(&v, 0.99), 99.0);
    assert_eq!(percentile(&v, 1.0), 100.0);
    assert_eq!(percentile(&v, 0.0), 1.0);
    assert_eq!(percentile(&[], 0.5), 0.0);
}

#[test]
fn evaluate_puts_it_together() {
    let regions = ["east".to_string(), "south".to_string()];
    let buyers = [
        buyer(0, 0.0, 0.010, FinalAnswer::Order),
        buyer(1, 0.0, 0.100, FinalAnswer::Order),
        buyer(1, 0.05, 2.0, FinalAnswer::AwaitingStock),
    ];
    let answers = [
        answer(0.0, 0.010, 201),
        answer(0.0, 0.100, 201),
        answer(0.05, 1.0, 503),
        answer(1.5, 2.0, 503),
    ];
    let q = evaluate(&SaleInput {
        total: 2,
        sold: 2,
        regions: &regions,
        buyers: &buyers,
        answers: &answers,
        end_s: 2.0,
        units_moved: 1,
        ledger_writes: 4,
    });
    assert_eq!(q.sellout_s, Some(0.1));
    assert_eq!((q.buyers, q.orders), (3, 2));
    assert_eq!(
        q.fcfs_inversions, 0,
        "the 503 buyer arrived after the last winner"
    );
    assert_eq!(q.awaiting_answers, 2);
    assert!((q.awaiting_per_order - 1.0).abs() < 1e-9);
    assert_eq!(q.stranded, 0, "everything sold");
    assert_eq!(q.regions[0].p50_ms, 10.0);
    assert_eq!(q.regions[1].buyers, 2);
    assert!((q.ledger_writes_per_s - 2.0).abs() < 1e-9);
}

fn any_answer() -> impl Strategy<Value = FinalAnswer> {
    prop_oneof![
        Just(FinalAnswer::Order),
        Just(FinalAnswer::SoldOut),
        Just(FinalAnswer::AwaitingStock),
        Just(FinalAnswer::Unavailable),
        Just(FinalAnswer::Refused),
        Just(FinalAnswer::Failed),
    ]
}

proptest! {
    /// Inversions never exceed the eligible losers, and serving strictly in arrival order
    /// (every winner before every loser) has none.
    #[test]
    fn inversions_are_bounded_and_zero_in_arrival_order(
        raw in proptest::collection::vec((0.0f64..10.0, any_answer()), 0..200),
    ) {
        let buyers: Vec<BuyerRecord> =
            raw.iter().map(|&(t, a)| buyer(0, t, t + 0.01, a)).collect();
        let losers = buyers.iter().filter(|b| b.answer.turned_away()).count() as u64;
        prop_assert!(fcfs_inversions(&buyers) <= losers);

        let mut sorted = buyers.clone();
        sorted.sort_by(|a, b| a.arrived_s.total_cmp(&b.arrived_s));
        let winners = sorted.iter().filter(|b| b.answer == FinalAnswer::Order).count();
        for (i, b) in sorted.iter_mut().enumerate() {
            b.arrived_s = i as f64;
            b.answer = if i < winners { FinalAnswer::Order } else { FinalAnswer::SoldOut };
        }
        prop_assert_eq!(fcfs_inversions(&sorted), 0);
    }

    /// Percentiles are members of the data and monotone in q.
    #[test]
    fn percentiles_are_members_and_monotone(
        mut v in proptest::collection::vec(0.0f64..1e6, 1..100),
        q1 in 0.0f64..1.0, q2 in 0.0f64..1.0,
    ) {
        v.sort_by(f64::total_cmp);
        let (lo, hi) = if q1 <= q2 { (q1, q2) } else { (q2, q1) };
        prop_assert!(v.contains(&percentile(&v, lo)));
        prop_assert!(percentile(&v, lo) <= percentile(&v, hi));
    }
}
