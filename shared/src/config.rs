//! Config files for every binary.
//!
//! Every setting of every binary is a command-line flag with an environment-variable fallback
//! (clap's `env`). A config file is simply a list of those variables, one `NAME=value` a line
//! (`#` comments, optional quotes), named by `--config FILE` or `QUOTA_CONFIG`. It is loaded
//! into the environment before flags are parsed and never overrides a variable that is already
//! set, so the precedence is: flag > environment > config file > built-in default. The same
//! file format is what `deploy/local/cluster.sh` writes (`cluster.env`), so one mechanism serves
//! operators, scripts and tests.

use std::collections::BTreeMap;
use std::path::Path;

/// Why a config file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file named.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line is not `NAME=value`.
    #[error("config file {path}, line {line}: expected NAME=value, got {text:?}")]
    Syntax {
        /// The file named.
        path: String,
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
}

/// Parses `NAME=value` lines (also accepting a leading `export `), pure.
pub fn parse_env_file(path: &str, text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut out = BTreeMap::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            return Err(ConfigError::Syntax {
                path: path.to_string(),
                line: i + 1,
                text: raw.to_string(),
            });
        };
        let name = name.trim();
        let valid = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if !valid {
            return Err(ConfigError::Syntax {
                path: path.to_string(),
                line: i + 1,
                text: raw.to_string(),
            });
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        out.insert(name.to_string(), value.to_string());
    }
    Ok(out)
}

/// Reads an env file and returns its variables.
pub fn read_env_file(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    parse_env_file(&shown, &text)
}

/// Finds `--config FILE` / `--config=FILE` in `args`, else `QUOTA_CONFIG`, and loads that file
/// into the environment without overriding variables already set. Call it first in `main`,
/// before any thread is spawned (it mutates the process environment).
pub fn load_config_from_args(args: &[String]) -> Result<Option<String>, ConfigError> {
    let mut path = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--config" {
            path = it.next().cloned();
        } else if let Some(p) = a.strip_prefix("--config=") {
            path = Some(p.to_string());
        }
    }
    let path = path.or_else(|| std::env::var("QUOTA_CONFIG").ok());
    let Some(path) = path else { return Ok(None) };
    for (name, value) in read_env_file(Path::new(&path))? {
        if std::env::var_os(&name).is_none() {
            // SAFETY: called at the top of main, before any other thread exists.
            unsafe { std::env::set_var(name, value) };
        }
    }
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_env_files() {
        let text = "# comment\nexport A=1\nB = \"two words\"\n\nC='x=y'\n";
        let m = parse_env_file("f", text).unwrap();
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "x=y");
    }

    #[test]
    fn rejects_garbage_with_line_number() {
        let err = parse_env_file("f", "A=1\nnot a pair\n").unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");
        assert!(parse_env_file("f", "1A=2").is_err());
    }
}
