//! Buyer tokens (JWTs) minted the way a shop's login service would, with the `openssl` CLI —
//! keys, HMAC and signatures — and put together by hand: an implementation independent of the
//! region node's verifier, for the tests that need a buyer to be somebody.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

/// Runs `openssl args…` with `input` on stdin; its stdout. Panics with stderr on failure.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the openssl CLI is installed");
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh key pair of `kind` (`rsa`, `ec`) in `dir`: (private PEM path, public PEM path).
pub fn key_pair(dir: &Path, kind: &str) -> (PathBuf, PathBuf) {
    let (private, public) = (
        dir.join(format!("{kind}.pem")),
        dir.join(format!("{kind}.pub.pem")),
    );
    let gen: &[&str] = if kind == "rsa" {
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"]
    } else {
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    };
    let mut args = vec!["genpkey"];
    args.extend_from_slice(gen);
    args.extend(["-out", private.to_str().unwrap()]);
    openssl(&args, b"");
    openssl(
        &[
            "pkey",
            "-in",
            private.to_str().unwrap(),
            "-pubout",
            "-out",
            public.to_str().unwrap(),
        ],
        b"",
    );
    (private, public)
}

/// Unpadded base64url.
fn b64url(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a token is signed.
pub enum Sig<'a> {
    /// `alg: none`, empty signature.
    None,
    /// HMAC-SHA256 with this secret.
    Hs256(&'a [u8]),
    /// RSASSA-PKCS1-v1_5 SHA-256 with this private key file.
    Rs256(&'a Path),
    /// ECDSA P-256 SHA-256 with this private key file.
    Es256(&'a Path),
}

/// A compact JWT of `claims`, signed as `sig` says.
pub fn jwt(sig: &Sig<'_>, claims: &Value) -> String {
    let alg = match sig {
        Sig::None => "none",
        Sig::Hs256(_) => "HS256",
        Sig::Rs256(_) => "RS256",
        Sig::Es256(_) => "ES256",
    };
    let header = json!({"alg": alg, "typ": "JWT"});
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let signature = match sig {
        Sig::None => Vec::new(),
        Sig::Hs256(secret) => {
            let key = format!("hexkey:{}", hex(secret));
            let args = [
                "dgst", "-sha256", "-mac", "HMAC", "-macopt", &key, "-binary",
            ];
            openssl(&args, input.as_bytes())
        }
        Sig::Rs256(key) => {
            let args = ["dgst", "-sha256", "-sign", key.to_str().unwrap(), "-binary"];
            openssl(&args, input.as_bytes())
        }
        Sig::Es256(key) => {
            let args = ["dgst", "-sha256", "-sign", key.to_str().unwrap(), "-binary"];
            ecdsa_der_to_jws(&openssl(&args, input.as_bytes()))
        }
    };
    format!("{input}.{}", b64url(&signature))
}

/// OpenSSL writes an ECDSA signature as DER `SEQUENCE { INTEGER r, INTEGER s }`; a JWS carries
/// `r ‖ s`, 32 bytes each for P-256.
fn ecdsa_der_to_jws(der: &[u8]) -> Vec<u8> {
    assert_eq!(der[0], 0x30, "DER sequence");
    let mut at = 2;
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[at], 0x02, "DER integer");
        let len = usize::from(der[at + 1]);
        let int = &der[at + 2..at + 2 + len];
        let int = &int[int.iter().take_while(|b| **b == 0).count()..];
        out.resize(out.len() + 32 - int.len(), 0);
        out.extend_from_slice(int);
        at += 2 + len;
    }
    out
}

/// `Bearer` + an HS256 token of `secret` for user `sub` from issuer `iss` to audience `aud`,
/// valid for `valid_s` seconds: the common case of the tests that only need a signed-in buyer.
pub fn hs256_bearer(secret: &str, sub: i64, iss: &str, aud: &str, valid_s: i64) -> String {
    let exp = chrono::Utc::now().timestamp() + valid_s;
    let claims = json!({"sub": sub.to_string(), "exp": exp, "iss": iss, "aud": aud});
    format!("Bearer {}", jwt(&Sig::Hs256(secret.as_bytes()), &claims))
}
