//! The direction of a known effect, as the real cluster shows it: under skewed demand a static
//! split strands units in the cold regions while buyers are turned away in the hot one; escrow
//! with demand rebalancing sells every unit.

use quota_sim::{compare, Design, Scenario};

#[test]
fn static_split_strands_units_under_skew_and_escrow_does_not() {
    let s = Scenario::load("skew").unwrap();
    let c = compare(&s, 1, &[Design::Escrow, Design::Static]).unwrap();
    let escrow = c.get(Design::Escrow).unwrap();
    let fixed = c.get(Design::Static).unwrap();
    assert!(
        fixed.quality.stranded > 0,
        "static stranded {}",
        fixed.quality.stranded
    );
    assert!(fixed.sold < fixed.total);
    assert_eq!(escrow.quality.stranded, 0);
    assert_eq!(escrow.sold, escrow.total);
    // The same direction `bench_regions_smoke` checks on the real cluster: the static split
    // tells hot-region buyers "sold out" while units sit elsewhere, escrow far less often.
    assert!(
        fixed.quality.false_sold_out_pct > escrow.quality.false_sold_out_pct,
        "static {} % vs escrow {} %",
        fixed.quality.false_sold_out_pct,
        escrow.quality.false_sold_out_pct
    );
}
