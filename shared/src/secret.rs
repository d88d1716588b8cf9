//! Passwords and other secrets read from files: never printed, never in a URL or a flag value
//! (a flag's value shows in `ps`). One reader for every password file of every process.

use std::fmt;
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

    /// Reads a secret file: its first line, without the line end. An empty one is an error,
    /// so a missing secret never becomes an empty password.
    pub fn from_file(path: &Path) -> Result<Secret, SecretError> {
        let raw = std::fs::read_to_string(path).map_err(|e| SecretError::Read {
            path: path.display().to_string(),
            source: e,
        })?;
        let line = raw.lines().next().unwrap_or("").trim_end_matches('\r');
        if line.is_empty() {
            return Err(SecretError::Empty(path.display().to_string()));
        }
        Ok(Secret(line.to_string()))
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

/// Why a secret file could not be used (names the file, never its content).
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
    fn a_secret_never_prints_and_is_its_files_first_line() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "<redacted> <redacted>");
        let dir = std::env::temp_dir().join(format!("quota-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\r\nignored\n").unwrap();
        assert_eq!(Secret::from_file(&f).unwrap().expose(), "s3cret");
        std::fs::write(&f, "\n").unwrap();
        assert!(matches!(Secret::from_file(&f), Err(SecretError::Empty(_))));
        assert!(matches!(
            Secret::from_file(&dir.join("missing")),
            Err(SecretError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
