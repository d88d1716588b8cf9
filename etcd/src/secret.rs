//! Passwords and other secrets read from files: never logged, never in a URL or a flag value.

use std::fmt;
use std::io::Write;
use std::path::Path;

/// A secret string whose `Debug` and `Display` print `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `s`.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Reads a secret file: the whole content without its trailing newline; an empty file is
    /// an error (a missing secret must not become an empty password).
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        let raw = std::fs::read_to_string(path).map_err(|e| SecretError::Read {
            path: path.display().to_string(),
            source: e,
        })?;
        let s = raw.trim_end_matches(['\n', '\r']);
        if s.is_empty() {
            return Err(SecretError::Empty(path.display().to_string()));
        }
        Ok(Secret(s.to_string()))
    }

    /// Reads the secret at `path`, or, if there is no file, creates one (mode 0600) holding a
    /// fresh random secret of 64 hex digits and returns that.
    pub fn ensure_file(path: &Path) -> Result<Secret, SecretError> {
        if path.exists() {
            return Secret::from_file(path);
        }
        let fresh = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let err = |e| SecretError::Write {
            path: path.display().to_string(),
            source: e,
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path).map_err(err)?;
        writeln!(f, "{fresh}").map_err(err)?;
        Ok(Secret(fresh))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Why a secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file could not be read.
    #[error("cannot read secret file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file could not be created.
    #[error("cannot write secret file {path}: {source}")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is empty.
    #[error("secret file {0} is empty")]
    Empty(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
    }

    #[test]
    fn a_secret_file_is_created_once_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("quota-secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.password");
        let made = Secret::ensure_file(&path).unwrap();
        assert_eq!(made.expose().len(), 64);
        assert_eq!(
            Secret::ensure_file(&path).unwrap(),
            made,
            "kept, not replaced"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(
            Secret::from_file(&path),
            Err(SecretError::Empty(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
