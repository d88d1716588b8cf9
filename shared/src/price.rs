//! A price as the admin API takes it: a JSON string of up to 8 digits and at most 2 decimals
//! (`"99"`, `"99.00"`, `"0.5"`), exactly what Postgres' `NUMERIC(10,2)` holds and what the
//! OpenAPI document's [`PRICE_PATTERN`] says. Anything else — a JSON number (a float would
//! round), a sign, an exponent, spaces, a third decimal — is refused as the request is read, so
//! the document and the server agree on every input.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{Deserializer, Error, Visitor};

/// The pattern of a price in the OpenAPI document.
pub const PRICE_PATTERN: &str = r"^[0-9]{1,8}(\.[0-9]{1,2})?$";

/// Whether `s` matches [`PRICE_PATTERN`] (checked by hand: no regex engine for one pattern).
pub fn is_price(s: &str) -> bool {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    (1..=8).contains(&int.len())
        && digits(int)
        && (!s.contains('.') || ((1..=2).contains(&frac.len()) && digits(frac)))
}

/// Parses a price string as [`is_price`] allows it.
pub fn parse(s: &str) -> Result<Decimal, String> {
    if !is_price(s) {
        return Err(format!(
            "a price is a string of up to 8 digits and at most 2 decimals, e.g. \"99.00\" (got {s:?})"
        ));
    }
    Decimal::from_str(s).map_err(|e| e.to_string())
}

struct PriceVisitor;

impl Visitor<'_> for PriceVisitor {
    type Value = Decimal;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a price string such as \"99.00\"")
    }

    fn visit_str<E: Error>(self, s: &str) -> Result<Decimal, E> {
        parse(s).map_err(E::custom)
    }
}

/// `#[serde(deserialize_with = "…")]` for a required price.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Decimal, D::Error> {
    d.deserialize_str(PriceVisitor)
}

/// `#[serde(deserialize_with = "…")]` for an optional price (`null` or absent: `None`).
pub fn deserialize_option<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Decimal>, D::Error> {
    struct OptionVisitor;
    impl<'de> Visitor<'de> for OptionVisitor {
        type Value = Option<Decimal>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a price string such as \"99.00\", or null")
        }
        fn visit_none<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            deserialize(d).map(Some)
        }
    }
    d.deserialize_option(OptionVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_numeric_10_2_holds_is_a_price() {
        for ok in [
            "0",
            "99",
            "99.00",
            "0.5",
            "12345678",
            "99999999.99",
            "007.10",
        ] {
            assert!(is_price(ok), "{ok}");
            let p = parse(ok).unwrap();
            assert!(crate::model::validate_price("price", p).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".5",
            "5.",
            "-1",
            "+1",
            "1e5",
            " 1",
            "1 ",
            "1.001",
            "123456789",
            "1,5",
            "0x10",
            "NaN",
            "1..2",
            "٣",
        ] {
            assert!(!is_price(bad), "{bad:?}");
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_json_number_is_not_a_price() {
        #[derive(serde::Deserialize)]
        struct P {
            #[serde(deserialize_with = "deserialize")]
            _p: Decimal,
        }
        assert!(serde_json::from_str::<P>(r#"{"_p": "1.50"}"#).is_ok());
        assert!(serde_json::from_str::<P>(r#"{"_p": 1.5}"#).is_err());
        assert!(serde_json::from_str::<P>(r#"{"_p": 2}"#).is_err());
    }
}
