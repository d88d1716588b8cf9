//! Pure admission decisions: what a region decides about a purchase before it touches Redis,
//! and what Redis's answer means. Keeping this free of I/O is what lets the bad-input table and
//! property tests run without servers.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::model::ProductSpec;

/// A purchase request after validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurchaseRequest {
    /// Positive buyer id.
    pub user_id: i64,
    /// Units wanted (1 ≤ quantity ≤ the product's per-user limit).
    pub quantity: i64,
}

/// Why a purchase is refused before Redis. Each maps to one HTTP status and error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// 400 `invalid_request`: the body or a field is malformed.
    InvalidRequest(String),
    /// 403 `sale_not_active`: before start or at/after end.
    SaleNotActive(String),
    /// 410 `sold_out`: this region has nothing left (in-process flag).
    SoldOut,
    /// 403 `user_mismatch`: the body names another user than the buyer token's.
    UserMismatch,
}

/// Largest user id accepted (JSON numbers above 2^53 lose precision in many clients).
pub const MAX_USER_ID: i64 = (1 << 53) - 1;

/// A purchase body after validation, before it is decided who buys: with buyer tokens on the
/// token names the buyer, so the body's `user_id` may be absent ([`PurchaseBody::buyer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurchaseBody {
    /// The body's `user_id`, if it has one (positive, at most [`MAX_USER_ID`]).
    pub user_id: Option<i64>,
    /// Units wanted (positive; the per-user limit is checked by [`precheck`]).
    pub quantity: i64,
}

impl PurchaseBody {
    /// Who buys. `token_user` is the user a verified buyer token names (`None` when buyer
    /// tokens are off). With a token the body may leave `user_id` out — the token's `sub` buys —
    /// and if it names one, that must be the token's (403 `user_mismatch`); without one the body
    /// is all there is, so `user_id` is required (400).
    pub fn buyer(self, token_user: Option<i64>) -> Result<PurchaseRequest, Rejection> {
        let user_id = match (token_user, self.user_id) {
            (Some(t), Some(b)) if t != b => return Err(Rejection::UserMismatch),
            (Some(u), _) | (None, Some(u)) => u,
            (None, None) => return Err(Rejection::InvalidRequest("user_id is required".into())),
        };
        Ok(PurchaseRequest {
            user_id,
            quantity: self.quantity,
        })
    }
}

/// Parses and validates a purchase body: `{"user_id": <positive integer>, "quantity": <optional
/// positive integer, default 1>}`. Unknown fields are refused so typos are not silently ignored.
/// For a node without buyer tokens: `user_id` is required.
pub fn parse_purchase(body: &[u8]) -> Result<PurchaseRequest, Rejection> {
    parse_purchase_body(body)?.buyer(None)
}

/// Parses and validates a purchase body like [`parse_purchase`], but leaves `user_id` optional
/// for [`PurchaseBody::buyer`] to decide (a buyer token may name the buyer instead).
pub fn parse_purchase_body(body: &[u8]) -> Result<PurchaseBody, Rejection> {
    let bad = |m: &str| Rejection::InvalidRequest(m.to_string());
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| Rejection::InvalidRequest(format!("body is not valid JSON: {e}")))?;
    let Value::Object(map) = value else {
        return Err(bad("body must be a JSON object"));
    };
    if let Some(k) = map.keys().find(|k| *k != "user_id" && *k != "quantity") {
        return Err(Rejection::InvalidRequest(format!("unknown field {k:?}")));
    }
    let user_id = match map.get("user_id") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            positive_int(v)
                .filter(|u| *u <= MAX_USER_ID)
                .ok_or_else(|| bad("user_id must be a positive integer (at most 2^53-1)"))?,
        ),
    };
    let quantity = match map.get("quantity") {
        None | Some(Value::Null) => 1,
        Some(v) => positive_int(v).ok_or_else(|| bad("quantity must be a positive integer"))?,
    };
    Ok(PurchaseBody { user_id, quantity })
}

/// A JSON value that is an integer > 0: `82`, or `82.0` — JSON has one number type, and JSON
/// Schema (so the OpenAPI document) counts a number without a fraction as an integer — but
/// not `82.5`, nor a string. An integral float beyond 2^53 is not exact, so it is refused.
fn positive_int(v: &Value) -> Option<i64> {
    #[allow(clippy::cast_precision_loss)] // 2^53 - 1 is exact in f64
    let exact = 1.0..=MAX_USER_ID as f64;
    v.as_i64()
        .or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && exact.contains(f))
                .map(|f| f as i64)
        })
        .filter(|n| *n > 0)
}

/// The checks that need only the product spec and the clock, in the order buyers should hear
/// about them: a malformed quantity first, then the sale window, then the sold-out flag.
pub fn precheck(
    spec: &ProductSpec,
    now: DateTime<Utc>,
    req: &PurchaseRequest,
    sold_out: bool,
) -> Result<(), Rejection> {
    if req.quantity > i64::from(spec.per_user_limit) {
        return Err(Rejection::InvalidRequest(format!(
            "quantity must be between 1 and {} for this product",
            spec.per_user_limit
        )));
    }
    if spec.ended {
        return Err(Rejection::SaleNotActive(format!(
            "the sale was ended by the operator at {}",
            spec.end_time.to_rfc3339()
        )));
    }
    if now < spec.start_time {
        return Err(Rejection::SaleNotActive(format!(
            "the sale starts at {}",
            spec.start_time.to_rfc3339()
        )));
    }
    if now >= spec.end_time {
        return Err(Rejection::SaleNotActive(format!(
            "the sale ended at {}",
            spec.end_time.to_rfc3339()
        )));
    }
    if sold_out {
        return Err(Rejection::SoldOut);
    }
    Ok(())
}

/// The home region of `user_id` among `regions`, by rendezvous (highest-random-weight)
/// hashing: deterministic on every node without coordination, uniform, and when a region is
/// added or removed only the users homed there move. Enforcing "buy only in your home region"
/// turns the per-user limit into a global one with no cross-region round trip on the hot path.
pub fn home_region(user_id: i64, regions: &[String]) -> Option<&str> {
    regions
        .iter()
        .max_by_key(|r| (weight(user_id, r), std::cmp::Reverse(r.as_str())))
        .map(String::as_str)
}

/// FNV-1a over (user, region), finished with splitmix64 so nearby user ids spread evenly.
fn weight(user_id: i64, region: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user_id.to_le_bytes().iter().chain(region.as_bytes()) {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// What the Redis admission script decided (its reply is `[code, value]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmitOutcome {
    /// Tokens taken; `remaining` is the stock left after this admission.
    Admitted {
        /// Stock left.
        remaining: i64,
    },
    /// The user already holds (or has in flight) `held` units; more would exceed the limit.
    OverUserLimit {
        /// Units the user already holds.
        held: i64,
    },
    /// Not enough stock for this quantity; `remaining` is what is left (0 = region sold out).
    Insufficient {
        /// Stock left.
        remaining: i64,
    },
    /// Redis lost its state (flushed or restarted) and the reconciler has not rebuilt it yet.
    NotReady,
}

impl AdmitOutcome {
    /// Decodes the script's `[code, value]` reply; `None` for anything unexpected.
    pub fn from_reply(code: i64, value: i64) -> Option<Self> {
        match code {
            0 => Some(AdmitOutcome::Admitted { remaining: value }),
            1 => Some(AdmitOutcome::OverUserLimit { held: value }),
            2 => Some(AdmitOutcome::Insufficient { remaining: value }),
            3 => Some(AdmitOutcome::NotReady),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use proptest::prelude::*;
    use rust_decimal::Decimal;

    fn spec(limit: i32) -> ProductSpec {
        let now = Utc::now();
        ProductSpec {
            product_id: 1,
            name: "x".into(),
            total: 10,
            price: Decimal::ONE,
            original_price: Decimal::TWO,
            start_time: now - Duration::minutes(1),
            end_time: now + Duration::minutes(1),
            per_user_limit: limit,
            ended: false,
            home_regions: Vec::new(),
            payment_window_s: None,
        }
    }

    #[test]
    fn bad_bodies() {
        let cases: &[&[u8]] = &[
            b"",
            b"{",
            b"[]",
            b"{}",
            b"{\"user_id\":0}",
            b"{\"user_id\":-3}",
            b"{\"user_id\":1.5}",
            b"{\"user_id\":\"7\"}",
            b"{\"user_id\":9007199254740992}",
            b"{\"user_id\":1,\"quantity\":0}",
            b"{\"user_id\":1,\"quantity\":-1}",
            b"{\"user_id\":1,\"quantity\":1.5}",
            b"{\"user_id\":9007199254740992.0}",
            b"{\"user_id\":1,\"qty\":1}",
        ];
        for body in cases {
            let r = parse_purchase(body);
            assert!(
                matches!(r, Err(Rejection::InvalidRequest(_))),
                "{:?} gave {r:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn good_bodies() {
        assert_eq!(
            parse_purchase(b"{\"user_id\":7}").unwrap(),
            PurchaseRequest {
                user_id: 7,
                quantity: 1
            }
        );
        assert_eq!(
            parse_purchase(b"{\"user_id\":7,\"quantity\":3}")
                .unwrap()
                .quantity,
            3
        );
        assert_eq!(
            parse_purchase(b"{\"user_id\":7,\"quantity\":null}")
                .unwrap()
                .quantity,
            1
        );
        // A number without a fraction is an integer, for JSON Schema as for this parser.
        assert_eq!(
            parse_purchase(b"{\"user_id\":7.0,\"quantity\":82.0}").unwrap(),
            PurchaseRequest {
                user_id: 7,
                quantity: 82
            }
        );
    }

    /// With a buyer token the body may leave `user_id` out (the token's user buys) or name
    /// the token's user; another user is a mismatch. Without a token `user_id` is required.
    /// A malformed `user_id` is refused whether or not a token names the buyer.
    #[test]
    fn the_token_names_the_buyer_when_the_body_does_not() {
        let body = |b: &[u8]| parse_purchase_body(b).unwrap();
        let req = |user_id, quantity| PurchaseRequest { user_id, quantity };
        assert_eq!(body(b"{}").buyer(Some(42)), Ok(req(42, 1)));
        assert_eq!(body(b"{\"quantity\":2}").buyer(Some(42)), Ok(req(42, 2)));
        assert_eq!(body(b"{\"user_id\":null}").buyer(Some(42)), Ok(req(42, 1)));
        assert_eq!(body(b"{\"user_id\":42}").buyer(Some(42)), Ok(req(42, 1)));
        assert_eq!(
            body(b"{\"user_id\":43}").buyer(Some(42)),
            Err(Rejection::UserMismatch)
        );
        assert_eq!(body(b"{\"user_id\":7}").buyer(None), Ok(req(7, 1)));
        for no_user in [&b"{}"[..], b"{\"quantity\":1}", b"{\"user_id\":null}"] {
            assert_eq!(
                body(no_user).buyer(None),
                Err(Rejection::InvalidRequest("user_id is required".into()))
            );
            assert!(parse_purchase(no_user).is_err());
        }
        for bad in [
            &b"{\"user_id\":0}"[..],
            b"{\"user_id\":\"42\"}",
            b"{\"user\":42}",
        ] {
            assert!(
                matches!(parse_purchase_body(bad), Err(Rejection::InvalidRequest(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn precheck_order() {
        let s = spec(2);
        let now = Utc::now();
        let ok = PurchaseRequest {
            user_id: 1,
            quantity: 2,
        };
        assert_eq!(precheck(&s, now, &ok, false), Ok(()));
        assert_eq!(precheck(&s, now, &ok, true), Err(Rejection::SoldOut));
        let big = PurchaseRequest {
            user_id: 1,
            quantity: 3,
        };
        assert!(matches!(
            precheck(&s, now, &big, true),
            Err(Rejection::InvalidRequest(_))
        ));
        let early = now - Duration::minutes(5);
        assert!(
            matches!(precheck(&s, early, &ok, true), Err(Rejection::SaleNotActive(m)) if m.contains("starts"))
        );
        let late = now + Duration::minutes(5);
        assert!(
            matches!(precheck(&s, late, &ok, false), Err(Rejection::SaleNotActive(m)) if m.contains("ended"))
        );
    }

    #[test]
    fn replies_decode() {
        assert_eq!(
            AdmitOutcome::from_reply(0, 5),
            Some(AdmitOutcome::Admitted { remaining: 5 })
        );
        assert_eq!(AdmitOutcome::from_reply(3, 0), Some(AdmitOutcome::NotReady));
        assert_eq!(AdmitOutcome::from_reply(9, 0), None);
    }

    #[test]
    fn home_regions_are_stable_and_spread() {
        let rs: Vec<String> = ["east", "south", "north"]
            .iter()
            .map(ToString::to_string)
            .collect();
        let mut counts = std::collections::HashMap::new();
        for u in 1..=30_000 {
            let h = home_region(u, &rs).unwrap();
            assert_eq!(home_region(u, &rs), Some(h), "deterministic");
            *counts.entry(h).or_insert(0) += 1;
        }
        for r in &rs {
            let c = counts[r.as_str()];
            assert!((9_000..11_000).contains(&c), "{r}: {c} of 30000");
        }
        assert_eq!(home_region(1, &[]), None);
    }

    proptest! {
        /// Removing a region only moves the users homed there; order of the list is irrelevant.
        #[test]
        fn rendezvous_moves_only_the_removed_regions_users(user in 1i64..1_000_000_000) {
            let all: Vec<String> = ["east", "south", "north", "west"].iter().map(ToString::to_string).collect();
            let home = home_region(user, &all).unwrap().to_string();
            let mut rev = all.clone();
            rev.reverse();
            prop_assert_eq!(home_region(user, &rev), Some(home.as_str()));
            let without: Vec<String> = all.iter().filter(|r| **r != "west").cloned().collect();
            if home != "west" {
                prop_assert_eq!(home_region(user, &without), Some(home.as_str()));
            }
        }

        /// Any accepted request has a positive user id and a quantity within the limit, and the
        /// window check agrees with the spec.
        #[test]
        fn accepted_means_in_bounds(user in any::<i64>(), qty in -5i64..10, limit in 1i32..5,
                                    offset_s in -120i64..120, sold_out: bool) {
            let body = format!("{{\"user_id\":{user},\"quantity\":{qty}}}");
            let s = spec(limit);
            let now = Utc::now() + Duration::seconds(offset_s);
            if let Ok(req) = parse_purchase(body.as_bytes()) {
                if precheck(&s, now, &req, sold_out).is_ok() {
                    prop_assert!(req.user_id > 0);
                    prop_assert!(req.quantity >= 1 && req.quantity <= i64::from(limit));
                    prop_assert!(s.is_active(now));
                    prop_assert!(!sold_out);
                }
            } else {
                prop_assert!(user <= 0 || qty <= 0 || user > MAX_USER_ID);
            }
        }
    }
}
