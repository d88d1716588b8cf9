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
}

/// Largest user id accepted (JSON numbers above 2^53 lose precision in many clients).
pub const MAX_USER_ID: i64 = (1 << 53) - 1;

/// Parses and validates a purchase body: `{"user_id": <positive integer>, "quantity": <optional
/// positive integer, default 1>}`. Unknown fields are refused so typos are not silently ignored.
pub fn parse_purchase(body: &[u8]) -> Result<PurchaseRequest, Rejection> {
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
        None | Some(Value::Null) => return Err(bad("user_id is required")),
        Some(v) => positive_int(v)
            .filter(|u| *u <= MAX_USER_ID)
            .ok_or_else(|| bad("user_id must be a positive integer (at most 2^53-1)"))?,
    };
    let quantity = match map.get("quantity") {
        None | Some(Value::Null) => 1,
        Some(v) => positive_int(v).ok_or_else(|| bad("quantity must be a positive integer"))?,
    };
    Ok(PurchaseRequest { user_id, quantity })
}

/// A JSON value that is an integer > 0 (not a float, not a string).
fn positive_int(v: &Value) -> Option<i64> {
    v.as_i64().filter(|n| *n > 0)
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
            b"{\"user_id\":1,\"quantity\":1.0}",
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

    proptest! {
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
