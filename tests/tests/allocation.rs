//! Issue 8: allocation as buyers see it, against real etcd, Redis and Postgres — a buyer who
//! finds their region out of stock while units are on their way waits in line for them
//! instead of hearing 503 and losing their place.

use quota_tests::{audit_ok, buy_all, by_status, total_sold, wait_for_redis_stock, Cluster, Sale};

const P: i64 = 1001;

/// All 3 units start in east; 5 buyers arrive in south at once. With `--await-stock-ms` the
/// south node holds them while the coordinator moves the units (release from east, grant to
/// south): the first three in line get orders, the last two hear 410 once nothing is left
/// anywhere — and nobody is told 503 to come back later.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn buyers_wait_in_line_for_units_on_their_way() {
    let c = Cluster::builder(&["east", "south"])
        .node_args(&["--await-stock-ms", "10000"])
        .start()
        .await;
    Sale::new(P, 3, "east=3").create(&c).await;
    south_sells_nothing_yet(&c).await;
    let south = c.region("south").node.url.clone();
    let outcomes = buy_all(&south, P, (1..=5).collect(), 5).await;
    let statuses = by_status(&outcomes);
    assert_eq!(statuses.get(&201), Some(&3), "{statuses:?}");
    assert_eq!(statuses.get(&410), Some(&2), "{statuses:?}");
    assert_eq!(statuses.get(&503), None, "{statuses:?}");
    assert_eq!(total_sold(&c, &["east", "south"], P).await, 3);
    audit_ok(&c, P).await;
}

/// Without waiting (`--await-stock-ms 0`) a buyer in a region holding nothing is
/// answered at once: 503 awaiting_stock while units are elsewhere (never 410: the sale is not
/// over, and the region knows it from the movable stock written with the sale).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn without_waiting_an_empty_region_answers_503_at_once() {
    let c = Cluster::builder(&["east", "south"])
        .node_args(&["--await-stock-ms", "0"])
        .start()
        .await;
    Sale::new(P, 3, "east=3").create(&c).await;
    south_sells_nothing_yet(&c).await;
    let south = c.region("south").node.url.clone();
    let outcomes = buy_all(&south, P, vec![1], 1).await;
    assert_eq!(outcomes[0].status, 503, "{outcomes:?}");
    assert_eq!(outcomes[0].code.as_deref(), Some("awaiting_stock"));
    audit_ok(&c, P).await;
}

/// Waits until south knows the product and its Redis is built (stock 0): from then on its
/// answers are about stock, not about a node still starting up.
async fn south_sells_nothing_yet(c: &Cluster) {
    wait_for_redis_stock(c, "south", P, 0).await;
}

/// Issue 9 §8: the leader's clock a minute behind the regions'. A region used to judge the
/// movable stock's freshness by the leader's timestamp, so every value looked a minute old and
/// an empty region told buyers "sold out" while units sat elsewhere. Freshness is now the
/// region's own time since the value arrived: the buyer hears 503 awaiting_stock, and the
/// units still move and sell.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_leader_clock_a_minute_behind_does_not_make_regions_sold_out() {
    let c = Cluster::builder(&["east", "south"])
        .node_args(&["--await-stock-ms", "0"])
        .coordinator_args(&["--clock-skew-ms", "-60000"])
        .start()
        .await;
    Sale::new(P, 3, "east=3").create(&c).await;
    south_sells_nothing_yet(&c).await;
    let south = c.region("south").node.url.clone();
    let first = buy_all(&south, P, vec![1], 1).await;
    assert_eq!(first[0].status, 503, "{first:?}");
    assert_eq!(first[0].code.as_deref(), Some("awaiting_stock"));
    // Buyers who keep coming get the units the coordinator moves to south.
    let mut sold = 0;
    for user in 2..200 {
        if buy_all(&south, P, vec![user], 1).await[0].status == 201 {
            sold += 1;
        }
        if sold == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(sold, 3, "every unit moved to south and sold there");
    audit_ok(&c, P).await;
}
