//! Who the buyer is: optional buyer-token (JWT) verification.
//!
//! With a key (`--buyer-token-hs256-secret-file` or `--buyer-token-public-key-file`), a purchase,
//! a read of one order and a read of a user's orders must carry `Authorization: Bearer <jwt>`,
//! signed with the one configured algorithm (so `alg: none` and HS/RS confusion are refused),
//! with `exp`, `iss`, `aud` and `sub` present and `sub` the buyer's user id (decimal digits). A
//! request is verified once into a [`Buyer`] before the rate limiter, Redis or Postgres see it,
//! so a refused request changes nothing; the handler then refuses a body or path that names
//! another user (403), takes the token's user when a purchase body names none, and answers
//! another user's order as unknown (404). Without a key, verification is off and the `user_id` a client sends is believed: anyone
//! can buy as anyone, so that is for development only.
//!
//! The checks are pure (a header map and a key in, a [`Buyer`] or an [`ApiError`] out) and
//! unit-tested below with tokens minted by the same crate.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use quota_shared::admission::MAX_USER_ID;
use serde::Deserialize;

use crate::config::{BuyerTokenAlg, BuyerTokenConfig};
use crate::error::ApiError;

/// Shortest HS256 secret accepted: 256 bits, the size of the hash (RFC 7518 §3.2).
const MIN_SECRET_BYTES: usize = 32;
/// Longest bearer token looked at (a real one is well under 2 KiB): the signature check is
/// the only costly step, and it is not run on an oversized blob.
const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// A buyer whose identity a verified token vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Buyer {
    /// The token's `sub`: the only user this request may act for.
    pub(super) user_id: i64,
}

impl Buyer {
    /// Refuses (403 `user_mismatch`) a request that names another user than the token's.
    pub(super) fn must_be(self, user_id: i64) -> Result<(), ApiError> {
        if self.user_id == user_id {
            Ok(())
        } else {
            Err(ApiError::UserMismatch)
        }
    }
}

/// The key a verifier checks signatures with, as read from its file.
enum Key<'a> {
    /// HS256 shared secret.
    Hs256Secret(&'a [u8]),
    /// A PEM public key of the given algorithm.
    PublicPem(BuyerTokenAlg, &'a [u8]),
}

/// Verifies buyer tokens, or (off) believes the client. Built once at start; cheap to clone.
/// Its `Debug` never shows the key.
#[derive(Clone, Default)]
pub(crate) struct BuyerAuth {
    verifier: Option<Arc<Verifier>>,
}

/// The key and the rules of an enabled [`BuyerAuth`].
struct Verifier {
    alg: Algorithm,
    key: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
}

impl fmt::Debug for BuyerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.verifier {
            None => f.write_str("BuyerAuth(off)"),
            Some(v) => f
                .debug_struct("BuyerAuth")
                .field("alg", &v.alg)
                .field("issuer", &v.issuer)
                .field("audience", &v.audience)
                .field("leeway_s", &v.validation.leeway)
                .field("key", &"[redacted]")
                .finish(),
        }
    }
}

/// The claims read from a token (the registered ones are checked by `jsonwebtoken`).
#[derive(Deserialize)]
struct Claims {
    /// Optional here so that a missing `sub` is reported as such by the validation.
    #[serde(default)]
    sub: Option<serde_json::Value>,
}

impl BuyerAuth {
    /// Reads the key named by `cfg` (once, at start). `Ok(off)` when no key is given; an error
    /// (a sentence for the operator, never the key) when the settings are incomplete,
    /// contradictory or the key is unusable.
    pub(crate) fn from_config(cfg: &BuyerTokenConfig) -> Result<BuyerAuth, String> {
        let (issuer, audience) = (
            cfg.buyer_token_issuer.as_deref().filter(|s| !s.is_empty()),
            cfg.buyer_token_audience
                .as_deref()
                .filter(|s| !s.is_empty()),
        );
        let material;
        let key = match (
            &cfg.buyer_token_hs256_secret_file,
            &cfg.buyer_token_public_key_file,
        ) {
            (None, None) => {
                if issuer.is_some() || audience.is_some() || cfg.buyer_token_alg.is_some() {
                    return Err(
                        "--buyer-token-issuer/-audience/-alg are set but no key is: \
                                give --buyer-token-hs256-secret-file or \
                                --buyer-token-public-key-file (else buyer tokens are not \
                                checked at all)"
                            .into(),
                    );
                }
                return Ok(BuyerAuth::default());
            }
            (Some(_), Some(_)) => {
                return Err("give one of --buyer-token-hs256-secret-file and \
                            --buyer-token-public-key-file, not both"
                    .into())
            }
            (Some(path), None) => {
                if cfg.buyer_token_alg.is_some() {
                    return Err("--buyer-token-alg is for --buyer-token-public-key-file; \
                                an HS256 secret is always HS256"
                        .into());
                }
                material = read_key_file("--buyer-token-hs256-secret-file", path)?;
                let secret = material.strip_suffix(b"\n").unwrap_or(&material);
                Key::Hs256Secret(secret.strip_suffix(b"\r").unwrap_or(secret))
            }
            (None, Some(path)) => {
                material = read_key_file("--buyer-token-public-key-file", path)?;
                Key::PublicPem(
                    cfg.buyer_token_alg.unwrap_or(BuyerTokenAlg::Rs256),
                    &material,
                )
            }
        };
        let (Some(issuer), Some(audience)) = (issuer, audience) else {
            return Err("with a buyer-token key, --buyer-token-issuer and \
                        --buyer-token-audience are required"
                .into());
        };
        BuyerAuth::new(&key, issuer, audience, cfg.buyer_token_leeway_s)
    }

    /// An enabled verifier for `key`, accepting only tokens from `issuer` for `audience`.
    fn new(key: &Key<'_>, issuer: &str, audience: &str, leeway_s: u64) -> Result<Self, String> {
        let (alg, key) = match *key {
            Key::Hs256Secret(secret) => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(format!(
                        "the HS256 secret in --buyer-token-hs256-secret-file is {} bytes; at \
                         least {MIN_SECRET_BYTES} are required (e.g. `openssl rand -base64 48`)",
                        secret.len()
                    ));
                }
                (Algorithm::HS256, DecodingKey::from_secret(secret))
            }
            Key::PublicPem(alg, pem) => {
                if pem.windows(11).any(|w| w == b"PRIVATE KEY") {
                    return Err(
                        "--buyer-token-public-key-file holds a private key; give the \
                                public key only (`openssl pkey -in key.pem -pubout`)"
                            .into(),
                    );
                }
                let (alg, key) = match alg {
                    BuyerTokenAlg::Rs256 => (Algorithm::RS256, DecodingKey::from_rsa_pem(pem)),
                    BuyerTokenAlg::Es256 => (Algorithm::ES256, DecodingKey::from_ec_pem(pem)),
                };
                let key = key.map_err(|e| {
                    format!(
                        "--buyer-token-public-key-file is not a PEM public key for {alg:?} \
                         (see --buyer-token-alg): {e}"
                    )
                })?;
                (alg, key)
            }
        };
        let mut validation = Validation::new(alg);
        validation.leeway = leeway_s;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Ok(BuyerAuth {
            verifier: Some(Arc::new(Verifier {
                alg,
                key,
                validation,
                issuer: issuer.to_string(),
                audience: audience.to_string(),
            })),
        })
    }

    /// One line for the start-up log (no key material).
    pub(crate) fn describe(&self) -> String {
        match &self.verifier {
            None => "off: user_id is whatever the client sends (development only)".into(),
            Some(v) => format!(
                "on: {:?} tokens from issuer {:?} for audience {:?}, leeway {} s",
                v.alg, v.issuer, v.audience, v.validation.leeway
            ),
        }
    }

    /// Whether tokens are checked.
    pub(crate) fn is_on(&self) -> bool {
        self.verifier.is_some()
    }

    /// The buyer a request's bearer token proves, `None` when verification is off, or the
    /// refusal (401 `token_missing`, `token_expired`, `token_invalid`).
    pub(super) fn identify(&self, headers: &HeaderMap) -> Result<Option<Buyer>, ApiError> {
        let Some(v) = &self.verifier else {
            return Ok(None);
        };
        v.verify(bearer_token(headers)?).map(Some)
    }
}

impl Verifier {
    /// Signature, algorithm, `exp`/`nbf` (with the leeway), `iss`, `aud`, then `sub`.
    fn verify(&self, token: &str) -> Result<Buyer, ApiError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .map_err(|e| self.refusal(&e))?;
        data.claims
            .sub
            .as_ref()
            .and_then(serde_json::Value::as_str)
            .and_then(user_id_of)
            .map(|user_id| Buyer { user_id })
            .ok_or_else(|| {
                ApiError::TokenInvalid(
                    "sub must be the buyer's user id: a positive integer in decimal digits".into(),
                )
            })
    }

    /// The answer for a token `jsonwebtoken` refused.
    fn refusal(&self, e: &jsonwebtoken::errors::Error) -> ApiError {
        let why = match e.kind() {
            ErrorKind::ExpiredSignature => return ApiError::TokenExpired,
            ErrorKind::ImmatureSignature => "not valid yet (nbf)".to_string(),
            ErrorKind::InvalidSignature => "bad signature".to_string(),
            ErrorKind::InvalidIssuer => "wrong issuer".to_string(),
            ErrorKind::InvalidAudience => "wrong audience".to_string(),
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::UnsupportedAlgorithm => {
                format!("only {:?} tokens are accepted", self.alg)
            }
            ErrorKind::MissingRequiredClaim(c) => {
                let kind = if c == "exp" || c == "nbf" {
                    "seconds since the epoch"
                } else {
                    "a string"
                };
                format!("claim {c} is required, as {kind}")
            }
            ErrorKind::InvalidClaimFormat(c) => format!("claim {c} is malformed"),
            _ => format!("not a well-formed {:?} JWT", self.alg),
        };
        ApiError::TokenInvalid(why)
    }
}

/// The token of the request's `Authorization: Bearer <token>` header (scheme case-insensitive).
/// No header, another scheme or an empty token: `token_missing`.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else {
        return Err(ApiError::TokenMissing);
    };
    if values.next().is_some() {
        return Err(ApiError::TokenInvalid(
            "more than one Authorization header".into(),
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::TokenInvalid("the Authorization header is not ASCII".into()))?
        .trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::TokenMissing);
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Err(ApiError::TokenInvalid(format!(
            "longer than {MAX_TOKEN_BYTES} bytes"
        )));
    }
    Ok(token)
}

/// A `sub` that is a user id: decimal digits without sign or leading zero, 1..=2^53-1 (the
/// range a purchase body accepts).
fn user_id_of(sub: &str) -> Option<i64> {
    if sub.is_empty() || sub.starts_with('0') || !sub.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    sub.parse::<i64>()
        .ok()
        .filter(|u| (1..=MAX_USER_ID).contains(u))
}

/// Reads a key file; the error names the flag and the path, never the content.
fn read_key_file(flag: &str, path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{flag} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::{json, Value};

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-only";
    const RSA_PRIVATE: &str = include_str!("testkeys/rsa_private.pem");
    const RSA_PUBLIC: &str = include_str!("testkeys/rsa_public.pem");
    const EC_PRIVATE: &str = include_str!("testkeys/ec_private.pem");
    const EC_PUBLIC: &str = include_str!("testkeys/ec_public.pem");

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// The claims of a good token for user 42.
    fn claims() -> Value {
        json!({"sub": "42", "exp": now() + 600, "iss": "shop", "aud": "quota"})
    }

    fn with(mut c: Value, field: &str, v: Value) -> Value {
        c[field] = v;
        c
    }

    fn without(mut c: Value, field: &str) -> Value {
        c.as_object_mut().unwrap().remove(field);
        c
    }

    fn hs256() -> BuyerAuth {
        BuyerAuth::new(&Key::Hs256Secret(SECRET), "shop", "quota", 5).unwrap()
    }

    fn rs256() -> BuyerAuth {
        let key = Key::PublicPem(BuyerTokenAlg::Rs256, RSA_PUBLIC.as_bytes());
        BuyerAuth::new(&key, "shop", "quota", 5).unwrap()
    }

    fn es256() -> BuyerAuth {
        let key = Key::PublicPem(BuyerTokenAlg::Es256, EC_PUBLIC.as_bytes());
        BuyerAuth::new(&key, "shop", "quota", 5).unwrap()
    }

    fn mint_hs(secret: &[u8], c: &Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            c,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    fn mint_rs(c: &Value) -> String {
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
        encode(&Header::new(Algorithm::RS256), c, &key).unwrap()
    }

    fn mint_es(c: &Value) -> String {
        let key = EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap();
        encode(&Header::new(Algorithm::ES256), c, &key).unwrap()
    }

    /// A token with `alg: none` and an empty signature, built by hand.
    fn unsigned(c: &Value) -> String {
        format!(
            "{}.{}.",
            b64url(&json!({"alg": "none", "typ": "JWT"})),
            b64url(c)
        )
    }

    /// Unpadded base64url of a JSON value's text.
    fn b64url(v: &Value) -> String {
        const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = v.to_string().into_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for k in 0..=chunk.len() {
                out.push(char::from(ABC[((n >> (18 - 6 * k)) & 63) as usize]));
            }
        }
        out
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        h
    }

    fn code(r: Result<Option<Buyer>, ApiError>) -> &'static str {
        match r {
            Ok(b) => panic!("expected a refusal, got {b:?}"),
            Err(e) => e.code(),
        }
    }

    #[test]
    fn a_valid_token_names_its_buyer() {
        let want = Some(Buyer { user_id: 42 });
        assert_eq!(
            hs256()
                .identify(&bearer(&mint_hs(SECRET, &claims())))
                .unwrap(),
            want
        );
        assert_eq!(
            rs256().identify(&bearer(&mint_rs(&claims()))).unwrap(),
            want
        );
        assert_eq!(
            es256().identify(&bearer(&mint_es(&claims()))).unwrap(),
            want
        );
        // The scheme is case-insensitive; unknown claims are ignored.
        let mut h = HeaderMap::new();
        let t = mint_hs(SECRET, &with(claims(), "scope", json!("buy")));
        h.insert(
            header::AUTHORIZATION,
            format!("bearer {t}").parse().unwrap(),
        );
        assert_eq!(hs256().identify(&h).unwrap(), want);
        // An audience list containing ours is fine.
        let t = mint_hs(SECRET, &with(claims(), "aud", json!(["other", "quota"])));
        assert_eq!(hs256().identify(&bearer(&t)).unwrap(), want);
    }

    #[test]
    fn off_believes_the_client_and_ignores_any_header() {
        let off = BuyerAuth::default();
        assert!(!off.is_on());
        assert_eq!(off.identify(&HeaderMap::new()).unwrap(), None);
        assert_eq!(off.identify(&bearer("garbage")).unwrap(), None);
    }

    #[test]
    fn a_missing_or_non_bearer_header_is_token_missing() {
        let auth = hs256();
        assert_eq!(code(auth.identify(&HeaderMap::new())), "token_missing");
        for v in [
            "Basic dXNlcjpwdw==",
            "Bearer",
            "Bearer    ",
            "",
            "Token abc",
        ] {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            assert_eq!(code(auth.identify(&h)), "token_missing", "{v:?}");
        }
    }

    #[test]
    fn a_malformed_header_or_token_is_token_invalid() {
        let auth = hs256();
        let good = mint_hs(SECRET, &claims());
        let mut two = bearer(&good);
        two.append(
            header::AUTHORIZATION,
            format!("Bearer {good}").parse().unwrap(),
        );
        assert_eq!(code(auth.identify(&two)), "token_invalid");
        let mut bytes = HeaderMap::new();
        bytes.insert(
            header::AUTHORIZATION,
            HeaderValue::from_bytes(b"Bearer \xffabc").unwrap(),
        );
        assert_eq!(code(auth.identify(&bytes)), "token_invalid");
        for t in [
            "abc",
            "a.b",
            "a.b.c",
            "..",
            &"x".repeat(MAX_TOKEN_BYTES + 1),
        ] {
            assert_eq!(code(auth.identify(&bearer(t))), "token_invalid", "{t:.20}");
        }
    }

    #[test]
    fn an_expired_token_is_token_expired_beyond_the_leeway_only() {
        let auth = hs256();
        let old = mint_hs(SECRET, &with(claims(), "exp", json!(now() - 3600)));
        assert_eq!(code(auth.identify(&bearer(&old))), "token_expired");
        // Two seconds past exp is inside the 5 s leeway.
        let just = mint_hs(SECRET, &with(claims(), "exp", json!(now() - 2)));
        assert_eq!(
            auth.identify(&bearer(&just)).unwrap(),
            Some(Buyer { user_id: 42 })
        );
        // Not valid yet.
        let early = mint_hs(SECRET, &with(claims(), "nbf", json!(now() + 3600)));
        assert_eq!(code(auth.identify(&bearer(&early))), "token_invalid");
    }

    #[test]
    fn every_required_claim_and_its_value_is_checked() {
        let auth = hs256();
        let refused = [
            ("no exp", without(claims(), "exp")),
            ("no iss", without(claims(), "iss")),
            ("no aud", without(claims(), "aud")),
            ("no sub", without(claims(), "sub")),
            ("wrong issuer", with(claims(), "iss", json!("evil"))),
            ("wrong audience", with(claims(), "aud", json!("other"))),
            ("exp as a string", with(claims(), "exp", json!("soon"))),
        ];
        for (what, c) in refused {
            let t = mint_hs(SECRET, &c);
            match auth.identify(&bearer(&t)) {
                Err(ApiError::TokenInvalid(why)) => eprintln!("{what}: {why}"),
                other => panic!("{what}: expected token_invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn sub_must_be_a_user_id_in_decimal() {
        let auth = hs256();
        for sub in [
            json!("alice"),
            json!("0"),
            json!("-5"),
            json!("+5"),
            json!("042"),
            json!("1.5"),
            json!(" 42"),
            json!(""),
            json!("9007199254740992"),
            json!("99999999999999999999"),
            json!(42),
            json!(null),
        ] {
            let t = mint_hs(SECRET, &with(claims(), "sub", sub.clone()));
            assert_eq!(code(auth.identify(&bearer(&t))), "token_invalid", "{sub}");
        }
        let t = mint_hs(SECRET, &with(claims(), "sub", json!("9007199254740991")));
        assert_eq!(
            auth.identify(&bearer(&t)).unwrap(),
            Some(Buyer {
                user_id: MAX_USER_ID
            })
        );
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let other = mint_hs(b"another-secret-that-is-32-bytes-long!!", &claims());
        assert_eq!(code(hs256().identify(&bearer(&other))), "token_invalid");
        // A changed payload under the original signature.
        let t = mint_rs(&claims());
        let forged = mint_rs(&with(claims(), "sub", json!("7")));
        let mut parts: Vec<&str> = t.split('.').collect();
        parts[1] = forged.split('.').nth(1).unwrap();
        let spliced = parts.join(".");
        assert!(matches!(
            rs256().identify(&bearer(&spliced)),
            Err(ApiError::TokenInvalid(why)) if why == "bad signature"
        ));
    }

    /// Only the configured algorithm: `none`, and a token of another family — above all an
    /// HS256 token "signed" with the RSA public key (the classic confusion) — are refused.
    #[test]
    fn only_the_configured_algorithm_is_accepted() {
        for auth in [hs256(), rs256(), es256()] {
            assert_eq!(
                code(auth.identify(&bearer(&unsigned(&claims())))),
                "token_invalid"
            );
        }
        let confused = mint_hs(RSA_PUBLIC.as_bytes(), &claims());
        assert_eq!(code(rs256().identify(&bearer(&confused))), "token_invalid");
        let confused = mint_hs(EC_PUBLIC.as_bytes(), &claims());
        assert_eq!(code(es256().identify(&bearer(&confused))), "token_invalid");
        assert_eq!(
            code(hs256().identify(&bearer(&mint_rs(&claims())))),
            "token_invalid"
        );
        assert_eq!(
            code(rs256().identify(&bearer(&mint_es(&claims())))),
            "token_invalid"
        );
        assert_eq!(
            code(es256().identify(&bearer(&mint_rs(&claims())))),
            "token_invalid"
        );
        // Same family, other size (HS512 with the right secret): still refused.
        let t = encode(
            &Header::new(Algorithm::HS512),
            &claims(),
            &EncodingKey::from_secret(SECRET),
        )
        .unwrap();
        assert!(matches!(
            hs256().identify(&bearer(&t)),
            Err(ApiError::TokenInvalid(why)) if why.contains("only HS256")
        ));
    }

    #[test]
    fn the_buyer_must_be_the_user_the_request_names() {
        let b = Buyer { user_id: 42 };
        assert!(b.must_be(42).is_ok());
        assert!(matches!(b.must_be(43), Err(ApiError::UserMismatch)));
    }

    /// Writes `content` to a fresh temporary file.
    fn file(content: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!("buyer-key-{}", uuid::Uuid::new_v4()));
        std::fs::write(&p, content).unwrap();
        p
    }

    fn config(secret: Option<&[u8]>, public: Option<&[u8]>) -> BuyerTokenConfig {
        BuyerTokenConfig {
            buyer_token_hs256_secret_file: secret.map(file),
            buyer_token_public_key_file: public.map(file),
            buyer_token_alg: None,
            buyer_token_issuer: Some("shop".into()),
            buyer_token_audience: Some("quota".into()),
            buyer_token_leeway_s: 5,
        }
    }

    #[test]
    fn config_reads_the_secret_without_its_trailing_newline() {
        let mut with_newline = SECRET.to_vec();
        with_newline.push(b'\n');
        let auth = BuyerAuth::from_config(&config(Some(&with_newline), None)).unwrap();
        assert!(auth.is_on());
        let t = mint_hs(SECRET, &claims());
        assert_eq!(
            auth.identify(&bearer(&t)).unwrap(),
            Some(Buyer { user_id: 42 })
        );
        // The secret is never shown.
        let shown = format!("{auth:?} {}", auth.describe());
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(shown.contains("redacted"), "{shown}");
    }

    #[test]
    fn config_refuses_what_would_not_be_safe() {
        let err = |c: &BuyerTokenConfig| BuyerAuth::from_config(c).unwrap_err();
        // A short secret (31 bytes, plus the newline that is trimmed).
        let e = err(&config(Some(b"0123456789012345678901234567890\n"), None));
        assert!(e.contains("31 bytes") && e.contains("at least 32"), "{e}");
        // Both keys.
        let e = err(&config(Some(SECRET), Some(RSA_PUBLIC.as_bytes())));
        assert!(e.contains("not both"), "{e}");
        // A key without issuer or audience.
        let mut c = config(Some(SECRET), None);
        c.buyer_token_issuer = None;
        assert!(err(&c).contains("--buyer-token-issuer"));
        let mut c = config(None, Some(RSA_PUBLIC.as_bytes()));
        c.buyer_token_audience = Some(String::new());
        assert!(err(&c).contains("--buyer-token-audience"));
        // Issuer without a key: verification would silently be off.
        assert!(err(&config(None, None)).contains("no key"));
        // A private key, or a key of the other algorithm.
        let e = err(&config(None, Some(RSA_PRIVATE.as_bytes())));
        assert!(e.contains("private key"), "{e}");
        let mut c = config(None, Some(RSA_PUBLIC.as_bytes()));
        c.buyer_token_alg = Some(BuyerTokenAlg::Es256);
        assert!(err(&c).contains("ES256"), "{}", err(&c));
        let mut c = config(Some(SECRET), None);
        c.buyer_token_alg = Some(BuyerTokenAlg::Rs256);
        assert!(err(&c).contains("--buyer-token-alg"));
        // A missing file names the flag.
        let mut c = config(None, None);
        c.buyer_token_public_key_file = Some("/nonexistent/key.pem".into());
        assert!(err(&c).contains("--buyer-token-public-key-file /nonexistent/key.pem"));
        // Nothing at all: off.
        let mut c = config(None, None);
        c.buyer_token_issuer = None;
        c.buyer_token_audience = None;
        assert!(!BuyerAuth::from_config(&c).unwrap().is_on());
    }

    #[test]
    fn config_reads_public_keys_of_either_algorithm() {
        let auth = BuyerAuth::from_config(&config(None, Some(RSA_PUBLIC.as_bytes()))).unwrap();
        assert_eq!(
            auth.identify(&bearer(&mint_rs(&claims()))).unwrap(),
            Some(Buyer { user_id: 42 })
        );
        let mut c = config(None, Some(EC_PUBLIC.as_bytes()));
        c.buyer_token_alg = Some(BuyerTokenAlg::Es256);
        let auth = BuyerAuth::from_config(&c).unwrap();
        assert_eq!(
            auth.identify(&bearer(&mint_es(&claims()))).unwrap(),
            Some(Buyer { user_id: 42 })
        );
    }
}
