//! Admin bearer tokens and their scopes: who may do what on the admin APIs.
//!
//! One token that can do everything, sent by the coordinator to every region, makes every
//! region node (and every dashboard that only reads) as powerful as the operator. So each
//! party gets its own token, and each token one [`Scope`]:
//!
//! | scope | token | allows |
//! |---|---|---|
//! | [`Scope::Operator`] | coordinator `--admin-token(-file)` | every coordinator admin request |
//! | [`Scope::Auditor`] | coordinator `--auditor-token-file` | the coordinator's reads only (`GET`: products, status, regions, the audit) |
//! | [`Scope::RegionAdmin`] | `--region-admin-token-file` on both | a region node's audit endpoint, and nothing on the coordinator |
//!
//! [`AdminTokens`] is the one check both services make: the presented token is compared in
//! constant time with every configured token (no early exit at the first match), and the
//! answer is a [`Denied`] — 401 (no token, or one that matches none) or 403 (a known token
//! whose scope does not allow the request). Tokens are read from files
//! ([`AdminToken::from_file`]) and never shown: their `Debug` and `Display` print
//! `<redacted>`.

use std::fmt;
use std::path::Path;

use crate::api::constant_time_eq;

/// The error code of a 403 for a valid token without the scope a request needs.
pub const FORBIDDEN_SCOPE: &str = "forbidden_scope";

/// The error body field naming the scope a refused request needs (`"operator"`, …).
pub const REQUIRED_SCOPE_FIELD: &str = "required_scope";

/// Shortest admin token accepted from a file: 16 characters of a random token are out of reach
/// of guessing through a rate-limited API.
pub const MIN_TOKEN_CHARS: usize = 16;

/// What an admin token may do. A request needs one scope; a token holds one, and
/// [`Scope::allows`] says whether that is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Everything on the coordinator: changes and reads.
    Operator,
    /// The coordinator's reads only (products, status, regions, running the audit): for
    /// dashboards and auditors, who must not be able to change a sale.
    Auditor,
    /// What the coordinator presents to a region node's audit endpoint; a region node, which
    /// holds this token, can use it on no coordinator endpoint.
    RegionAdmin,
    /// The payment system's, on a region node: it may record payments and nothing else.
    Payments,
}

impl Scope {
    /// Every scope, for tables and tests.
    pub const ALL: [Scope; 4] = [
        Scope::Operator,
        Scope::Auditor,
        Scope::RegionAdmin,
        Scope::Payments,
    ];

    /// The name in flags, error bodies and messages: `operator`, `auditor`, `region-admin`,
    /// `payments`.
    pub const fn name(self) -> &'static str {
        match self {
            Scope::Operator => "operator",
            Scope::Auditor => "auditor",
            Scope::RegionAdmin => "region-admin",
            Scope::Payments => "payments",
        }
    }

    /// Whether a token holding `self` may make a request that needs `needed`: the operator
    /// may do what the auditor may; otherwise a scope allows only itself (the region-admin
    /// scope is not "more" than anything on the coordinator, nor the operator's on a region).
    pub const fn allows(self, needed: Scope) -> bool {
        matches!(
            (self, needed),
            (Scope::Operator, Scope::Operator | Scope::Auditor)
                | (Scope::Auditor, Scope::Auditor)
                | (Scope::RegionAdmin, Scope::RegionAdmin)
                | (Scope::Payments, Scope::Payments)
        )
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An admin token: a secret whose `Debug` and `Display` print `<redacted>`, so that no log line,
/// panic message or `{:?}` of a config struct can show it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

impl AdminToken {
    /// Wraps a token given directly (e.g. the legacy `--admin-token` flag); no checks.
    pub fn new(token: impl Into<String>) -> AdminToken {
        AdminToken(token.into())
    }

    /// Reads a token file given by `flag` (named in errors, with the path, never the content):
    /// its first line without the line ending. Refused when it cannot be read, is empty, holds
    /// anything but printable ASCII without spaces (it travels in an HTTP header), or is
    /// shorter than [`MIN_TOKEN_CHARS`].
    pub fn from_file(flag: &str, path: &Path) -> Result<AdminToken, TokenFileError> {
        let shown = || (flag.to_string(), path.display().to_string());
        let raw = std::fs::read(path).map_err(|source| {
            let (flag, path) = shown();
            TokenFileError::Read { flag, path, source }
        })?;
        let line = raw.split(|b| *b == b'\n').next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let (flag, path) = shown();
        if line.is_empty() {
            return Err(TokenFileError::Empty { flag, path });
        }
        if !line.iter().all(u8::is_ascii_graphic) {
            return Err(TokenFileError::NotPrintable { flag, path });
        }
        if line.len() < MIN_TOKEN_CHARS {
            return Err(TokenFileError::TooShort {
                flag,
                path,
                chars: line.len(),
            });
        }
        // Printable ASCII, so valid UTF-8.
        Ok(AdminToken(String::from_utf8_lossy(line).into_owned()))
    }

    /// The token itself, for the one place that must send it (an `Authorization` header).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the token is empty (an unset flag given as `--admin-token ""`).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::str::FromStr for AdminToken {
    type Err = std::convert::Infallible;

    /// Any string (for clap): checks happen after parsing, so that a refusal can never echo
    /// the token the way a value-parser error would.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(AdminToken::new(s))
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a token file cannot be used; says which flag and file, never what is in it.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("{flag} {path}: cannot read the token file: {source}")]
    Read {
        /// The flag that named the file.
        flag: String,
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The first line is empty.
    #[error("{flag} {path}: the token file is empty (its first line is the token)")]
    Empty {
        /// The flag that named the file.
        flag: String,
        /// The file.
        path: String,
    },
    /// The token has spaces, control or non-ASCII characters.
    #[error(
        "{flag} {path}: the token must be printable ASCII without spaces \
         (e.g. `openssl rand -hex 32`)"
    )]
    NotPrintable {
        /// The flag that named the file.
        flag: String,
        /// The file.
        path: String,
    },
    /// The token is too short to be a secret.
    #[error(
        "{flag} {path}: the token is {chars} characters; at least {MIN_TOKEN_CHARS} are \
         required (e.g. `openssl rand -hex 32`)"
    )]
    TooShort {
        /// The flag that named the file.
        flag: String,
        /// The file.
        path: String,
        /// Its length.
        chars: usize,
    },
}

/// Why a request is refused; see [`AdminTokens::authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// 401: no `Authorization: Bearer <token>` header (or a malformed one, or several).
    NoToken,
    /// 401: a bearer token that is none of the configured ones.
    UnknownToken,
    /// 403: a configured token whose scope does not allow the request.
    Forbidden {
        /// The scope the presented token holds.
        held: Scope,
        /// The scope the request needs.
        needed: Scope,
    },
}

impl Denied {
    /// Whether this is a 403 (else a 401).
    pub const fn is_forbidden(self) -> bool {
        matches!(self, Denied::Forbidden { .. })
    }
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denied::NoToken => {
                f.write_str("an admin token is required: send 'Authorization: Bearer <token>'")
            }
            Denied::UnknownToken => f.write_str("invalid admin token"),
            Denied::Forbidden { held, needed } => write!(
                f,
                "the {held} token may not do this: it needs the {needed} scope{}",
                if *needed == Scope::Auditor {
                    " (an auditor or operator token)"
                } else {
                    ""
                }
            ),
        }
    }
}

/// Two scopes were given the same token: each must have its own, or one party could act as
/// the other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {0} token and the {1} token are the same; give each scope its own token")]
pub struct SameToken(pub Scope, pub Scope);

/// The admin tokens a service accepts, each with its scope. Empty: every request is refused
/// 401 (the admin endpoints are off).
#[derive(Clone, Default)]
pub struct AdminTokens {
    tokens: Vec<(Scope, AdminToken)>,
}

impl fmt::Debug for AdminTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.tokens.iter().map(|(s, t)| (s.name(), t)))
            .finish()
    }
}

impl AdminTokens {
    /// Accepts `token` as holding `scope`. Refused when another scope already has the same
    /// token (or `scope` already has one): each scope its own token.
    pub fn add(&mut self, scope: Scope, token: AdminToken) -> Result<(), SameToken> {
        for (s, t) in &self.tokens {
            if *s == scope || constant_time_eq(token.expose().as_bytes(), t.expose().as_bytes()) {
                return Err(SameToken(*s, scope));
            }
        }
        self.tokens.push((scope, token));
        Ok(())
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The scope the presented token holds, `None` for a token that is none of ours. Compared
    /// with every configured token in constant time, and the match selected without a branch,
    /// so timing tells neither whether nor which one matched.
    pub fn scope_of(&self, presented: &str) -> Option<Scope> {
        let mut hit = 0usize;
        for (i, (_, token)) in self.tokens.iter().enumerate() {
            let eq = usize::from(std::hint::black_box(constant_time_eq(
                presented.as_bytes(),
                token.expose().as_bytes(),
            )));
            hit |= eq * (i + 1);
        }
        hit.checked_sub(1)
            .and_then(|i| self.tokens.get(i))
            .map(|(scope, _)| *scope)
    }

    /// The one check: `authorization` is every `Authorization` header value of the request
    /// (exactly one is expected), `needed` the scope the request needs. The presented token's
    /// scope when it allows the request, else why not.
    pub fn authorize<'a>(
        &self,
        authorization: impl IntoIterator<Item = &'a [u8]>,
        needed: Scope,
    ) -> Result<Scope, Denied> {
        let mut values = authorization.into_iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            return Err(Denied::NoToken);
        };
        let token = bearer_token(value).ok_or(Denied::NoToken)?;
        let held = self.scope_of(token).ok_or(Denied::UnknownToken)?;
        if held.allows(needed) {
            Ok(held)
        } else {
            Err(Denied::Forbidden { held, needed })
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive,
/// RFC 6750), `None` for another scheme, no token or bytes that are not ASCII.
pub fn bearer_token(value: &[u8]) -> Option<&str> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() && token.is_ascii())
        .then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPERATOR: &str = "operator-token-0123456789";
    const AUDITOR: &str = "auditor-token-0123456789";
    const REGION: &str = "region-admin-token-0123456789";

    fn coordinator() -> AdminTokens {
        let mut t = AdminTokens::default();
        t.add(Scope::Operator, AdminToken::new(OPERATOR)).unwrap();
        t.add(Scope::Auditor, AdminToken::new(AUDITOR)).unwrap();
        t.add(Scope::RegionAdmin, AdminToken::new(REGION)).unwrap();
        t
    }

    fn header(v: &str) -> Vec<&[u8]> {
        vec![v.as_bytes()]
    }

    #[test]
    fn each_scope_allows_what_the_table_says() {
        use Scope::{Auditor, Operator, Payments, RegionAdmin};
        let allowed = [
            (Operator, Operator),
            (Operator, Auditor),
            (Auditor, Auditor),
            (RegionAdmin, RegionAdmin),
            (Payments, Payments),
        ];
        for held in Scope::ALL {
            for needed in Scope::ALL {
                assert_eq!(
                    held.allows(needed),
                    allowed.contains(&(held, needed)),
                    "{held} for {needed}"
                );
            }
        }
        let names: Vec<&str> = Scope::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names, ["operator", "auditor", "region-admin", "payments"]);
    }

    #[test]
    fn every_token_is_known_by_its_scope_and_nothing_else_is() {
        let t = coordinator();
        assert_eq!(t.scope_of(OPERATOR), Some(Scope::Operator));
        assert_eq!(t.scope_of(AUDITOR), Some(Scope::Auditor));
        assert_eq!(t.scope_of(REGION), Some(Scope::RegionAdmin));
        for other in [
            "",
            "operator",
            "operator-token-012345678",
            "operator-token-0123456789x",
        ] {
            assert_eq!(t.scope_of(other), None, "{other:?}");
        }
        assert_eq!(AdminTokens::default().scope_of(OPERATOR), None);
    }

    #[test]
    fn authorize_answers_401_or_403_as_it_should() {
        let t = coordinator();
        let bearer = |tok: &str| format!("Bearer {tok}");
        assert_eq!(
            t.authorize(header(&bearer(OPERATOR)), Scope::Operator),
            Ok(Scope::Operator)
        );
        assert_eq!(
            t.authorize(header(&bearer(OPERATOR)), Scope::Auditor),
            Ok(Scope::Operator)
        );
        assert_eq!(
            t.authorize(header(&format!("bearer  {AUDITOR} ")), Scope::Auditor),
            Ok(Scope::Auditor)
        );
        assert_eq!(
            t.authorize(header(&bearer(AUDITOR)), Scope::Operator),
            Err(Denied::Forbidden {
                held: Scope::Auditor,
                needed: Scope::Operator
            })
        );
        for needed in [Scope::Operator, Scope::Auditor] {
            assert_eq!(
                t.authorize(header(&bearer(REGION)), needed),
                Err(Denied::Forbidden {
                    held: Scope::RegionAdmin,
                    needed
                })
            );
        }
        assert_eq!(
            t.authorize(header(&bearer("nobody-knows-this-token")), Scope::Auditor),
            Err(Denied::UnknownToken)
        );
        assert_eq!(
            t.authorize(Vec::new(), Scope::Auditor),
            Err(Denied::NoToken)
        );
        for malformed in [
            OPERATOR,
            "Basic b3BlcmF0b3I6cHc=",
            "Bearer",
            "Bearer   ",
            "",
            "Token operator-token-0123456789",
        ] {
            assert_eq!(
                t.authorize(header(malformed), Scope::Auditor),
                Err(Denied::NoToken),
                "{malformed:?}"
            );
        }
        assert_eq!(
            t.authorize(vec![&b"Bearer \xffabc"[..]], Scope::Auditor),
            Err(Denied::NoToken)
        );
        // Two Authorization headers, even both valid: refused.
        let two = bearer(OPERATOR);
        assert_eq!(
            t.authorize(vec![two.as_bytes(), two.as_bytes()], Scope::Auditor),
            Err(Denied::NoToken)
        );
        let m = Denied::Forbidden {
            held: Scope::Auditor,
            needed: Scope::Operator,
        }
        .to_string();
        assert!(m.contains("needs the operator scope"), "{m}");
    }

    #[test]
    fn no_two_scopes_share_a_token() {
        let mut t = AdminTokens::default();
        t.add(Scope::Operator, AdminToken::new(OPERATOR)).unwrap();
        assert_eq!(
            t.add(Scope::Auditor, AdminToken::new(OPERATOR)),
            Err(SameToken(Scope::Operator, Scope::Auditor))
        );
        assert!(t.add(Scope::Operator, AdminToken::new(AUDITOR)).is_err());
        assert_eq!(t.scope_of(OPERATOR), Some(Scope::Operator));
        assert_eq!(t.scope_of(AUDITOR), None);
    }

    #[test]
    fn tokens_never_print() {
        let t = coordinator();
        let shown = format!(
            "{t:?} {} {:?}",
            AdminToken::new(OPERATOR),
            AdminToken::new(AUDITOR)
        );
        for secret in [OPERATOR, AUDITOR, REGION] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("<redacted>") && shown.contains("region-admin"),
            "{shown}"
        );
    }

    /// Writes `content` to a fresh file.
    fn file(content: &[u8]) -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "quota-admin-token-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::write(&p, content).unwrap();
        p
    }

    #[test]
    fn token_files_give_their_first_line_and_refuse_what_is_no_secret() {
        let read = |content: &[u8]| {
            let p = file(content);
            let r = AdminToken::from_file("--auditor-token-file", &p);
            std::fs::remove_file(&p).unwrap();
            r
        };
        assert_eq!(
            read(b"0123456789abcdef\n").unwrap().expose(),
            "0123456789abcdef"
        );
        assert_eq!(
            read(b"0123456789abcdef\r\n").unwrap().expose(),
            "0123456789abcdef"
        );
        assert_eq!(
            read(b"0123456789abcdefXYZ\nsecond line\n")
                .unwrap()
                .expose(),
            "0123456789abcdefXYZ"
        );
        assert_eq!(
            read(b"0123456789abcdef").unwrap().expose(),
            "0123456789abcdef"
        );
        assert!(matches!(read(b""), Err(TokenFileError::Empty { .. })));
        assert!(matches!(
            read(b"\nsecret-on-line-two\n"),
            Err(TokenFileError::Empty { .. })
        ));
        assert!(matches!(
            read(b"short-secret\n"),
            Err(TokenFileError::TooShort { chars: 12, .. })
        ));
        for bad in [
            &b"0123456789 abcdef\n"[..],
            b"0123456789abcdef\t",
            "0123456789abcdéf".as_bytes(),
        ] {
            assert!(
                matches!(read(bad), Err(TokenFileError::NotPrintable { .. })),
                "{bad:?}"
            );
        }
        let e = read(b"tiny-secret\n").unwrap_err().to_string();
        assert!(
            e.starts_with("--auditor-token-file /") && e.contains("at least 16"),
            "{e}"
        );
        assert!(!e.contains("tiny-secret"), "{e}");
        let missing = AdminToken::from_file("--admin-token-file", Path::new("/nonexistent/t"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("--admin-token-file /nonexistent/t"),
            "{missing}"
        );
    }
}
