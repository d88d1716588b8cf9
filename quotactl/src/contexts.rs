//! The config file of named **contexts** — one per deployment an operator works with (its
//! coordinator URLs, token file, CA, timeout) — so that `quotactl --context prod status` needs
//! no long flags, and `config use-context` switches the default. Parsing and choosing are pure;
//! only [`ConfigFile::load`] and [`use_context`] touch the disk.
//!
//! ```toml
//! current-context = "staging"
//!
//! [contexts.prod]
//! urls = ["https://coord-a.prod:8443", "https://coord-b.prod:8443"]
//! token-file = "prod-auditor.token"   # relative paths: next to this file
//! cacert = "prod-ca.pem"
//! timeout = 5
//!
//! [contexts.staging]
//! urls = ["http://127.0.0.1:7000"]
//! token-file = "/etc/quota/staging-operator.token"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why the config file or a context could not be used (each a usage error: exit 2).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContextError {
    /// The file could not be read.
    #[error("config file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid config (TOML syntax, an unknown key, a wrong type).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What the parser said.
        message: String,
    },
    /// A context was asked for by a name the file does not define.
    #[error("no context {name:?} in {path} (defined: {known})")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The file.
        path: String,
        /// The names it defines.
        known: String,
    },
    /// A context was named but there is no config file.
    #[error("--context {name}: no config file at {path} (see `quotactl config view`)")]
    NoFile {
        /// The name asked for.
        name: String,
        /// Where the file was looked for.
        path: String,
    },
    /// A context has no coordinator URL.
    #[error("context {name:?} in {path} lists no urls")]
    NoUrls {
        /// The context.
        name: String,
        /// The file.
        path: String,
    },
}

/// One deployment: where its coordinators are and how to talk to them.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct Context {
    /// Coordinator instances (any of them; failover goes down the list).
    pub(crate) urls: Vec<String>,
    /// The admin token's file (its first line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) token_file: Option<PathBuf>,
    /// CA certificate to trust for `https://` URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) cacert: Option<PathBuf>,
    /// Seconds to wait for one instance's answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) timeout: Option<u64>,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(crate) struct ConfigFile {
    /// The context used when none is named.
    #[serde(default)]
    pub(crate) current_context: Option<String>,
    /// Every context, by name.
    #[serde(default)]
    pub(crate) contexts: BTreeMap<String, Context>,
    /// Where it was read from (relative paths inside are relative to its directory).
    #[serde(skip)]
    pub(crate) path: PathBuf,
}

/// How a context came to be used: named on purpose (`--context`, `QUOTACTL_CONTEXT`), which
/// beats the `COORDINATOR_*` environment, or the file's `current-context`, which does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chosen {
    /// `--context` or `QUOTACTL_CONTEXT`.
    Explicitly,
    /// The file's `current-context`.
    ByDefault,
}

/// The context in use, with its name and how it was chosen; paths already resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Selected {
    /// Its name.
    pub(crate) name: String,
    /// How it was chosen.
    pub(crate) chosen: Chosen,
    /// Its settings (relative paths made relative to the file's directory).
    pub(crate) context: Context,
}

/// Where the config file is when `--config` does not say: `$XDG_CONFIG_HOME/quotactl/config.toml`,
/// else `$HOME/.config/quotactl/config.toml`.
pub(crate) fn default_path(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let base = env("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            env("HOME")
                .filter(|v| !v.is_empty())
                .map(|h| Path::new(&h).join(".config"))
        })?;
    Some(base.join("quotactl").join("config.toml"))
}

impl ConfigFile {
    /// Parses a config file's text; `path` names it in errors and anchors relative paths.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<ConfigFile, ContextError> {
        let mut file: ConfigFile = toml::from_str(text).map_err(|e| ContextError::Parse {
            path: path.display().to_string(),
            message: e.message().to_string(),
        })?;
        file.path = path.to_path_buf();
        Ok(file)
    }

    /// Reads the file at `path`. `Ok(None)`: there is none and `required` is false (the
    /// default location need not exist; a file named with `--config` must).
    pub(crate) fn load(path: &Path, required: bool) -> Result<Option<ConfigFile>, ContextError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
            Err(source) => Err(ContextError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// The context named by `name` (explicitly), else the file's `current-context`, else none.
    pub(crate) fn select(&self, name: Option<&str>) -> Result<Option<Selected>, ContextError> {
        let (name, chosen) = match (name, self.current_context.as_deref()) {
            (Some(n), _) => (n, Chosen::Explicitly),
            (None, Some(n)) => (n, Chosen::ByDefault),
            (None, None) => return Ok(None),
        };
        let shown = || self.path.display().to_string();
        let context = self
            .contexts
            .get(name)
            .ok_or_else(|| ContextError::Unknown {
                name: name.to_string(),
                path: shown(),
                known: if self.contexts.is_empty() {
                    "none".into()
                } else {
                    self.contexts.keys().cloned().collect::<Vec<_>>().join(", ")
                },
            })?;
        if context.urls.iter().all(|u| u.trim().is_empty()) {
            return Err(ContextError::NoUrls {
                name: name.to_string(),
                path: shown(),
            });
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let anchor = |p: &Option<PathBuf>| p.as_ref().map(|p| dir.join(p));
        Ok(Some(Selected {
            name: name.to_string(),
            chosen,
            context: Context {
                urls: context.urls.clone(),
                token_file: anchor(&context.token_file),
                cacert: anchor(&context.cacert),
                timeout: context.timeout,
            },
        }))
    }
}

/// What `config view` shows: where the file is and what it defines — paths, never a token.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ConfigView {
    /// The file's location.
    pub(crate) path: PathBuf,
    /// Whether there is a file there.
    pub(crate) exists: bool,
    /// Its current context.
    pub(crate) current_context: Option<String>,
    /// Its contexts, as written.
    pub(crate) contexts: BTreeMap<String, Context>,
}

impl ConfigView {
    /// The view of `file` (none: nothing at `path`).
    pub(crate) fn new(path: &Path, file: Option<&ConfigFile>) -> ConfigView {
        ConfigView {
            path: path.to_path_buf(),
            exists: file.is_some(),
            current_context: file.and_then(|f| f.current_context.clone()),
            contexts: file.map(|f| f.contexts.clone()).unwrap_or_default(),
        }
    }
}

/// Sets `current-context = name` in the file at `path`, keeping its comments and layout;
/// refuses a name the file does not define.
pub(crate) fn use_context(path: &Path, name: &str) -> Result<(), ContextError> {
    let shown = || path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ContextError::Read {
        path: shown(),
        source,
    })?;
    let file = ConfigFile::parse(path, &text)?;
    file.select(Some(name))?;
    let mut doc: toml_edit::DocumentMut =
        text.parse()
            .map_err(|e: toml_edit::TomlError| ContextError::Parse {
                path: shown(),
                message: e.message().to_string(),
            })?;
    doc["current-context"] = toml_edit::value(name);
    std::fs::write(path, doc.to_string()).map_err(|source| ContextError::Read {
        path: shown(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
# operator's contexts
current-context = "staging"

[contexts.prod]
urls = ["https://a:8443", "https://b:8443"]
token-file = "prod.token"
cacert = "/etc/quota/ca.pem"
timeout = 5

[contexts.staging]
urls = ["http://127.0.0.1:7000"]
"#;

    fn file() -> ConfigFile {
        ConfigFile::parse(Path::new("/home/op/.config/quotactl/config.toml"), FILE).unwrap()
    }

    #[test]
    fn a_named_context_beats_the_current_one_and_relative_paths_sit_beside_the_file() {
        let f = file();
        let prod = f.select(Some("prod")).unwrap().unwrap();
        assert_eq!(prod.chosen, Chosen::Explicitly);
        assert_eq!(prod.context.urls, ["https://a:8443", "https://b:8443"]);
        assert_eq!(
            prod.context.token_file.as_deref(),
            Some(Path::new("/home/op/.config/quotactl/prod.token"))
        );
        assert_eq!(
            prod.context.cacert.as_deref(),
            Some(Path::new("/etc/quota/ca.pem"))
        );
        assert_eq!(prod.context.timeout, Some(5));
        let staging = f.select(None).unwrap().unwrap();
        assert_eq!(
            (staging.name.as_str(), staging.chosen),
            ("staging", Chosen::ByDefault)
        );
        let none = ConfigFile::parse(Path::new("c.toml"), "").unwrap();
        assert_eq!(none.select(None).unwrap(), None);
    }

    #[test]
    fn bad_files_and_names_are_explained() {
        let e = file().select(Some("qa")).unwrap_err().to_string();
        assert!(
            e.contains("no context \"qa\"") && e.contains("prod, staging"),
            "{e}"
        );
        let e = ConfigFile::parse(Path::new("c.toml"), "[contexts.x]\nurl = \"http://a\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("config file c.toml:") && e.contains("url"),
            "{e}"
        );
        let e = ConfigFile::parse(Path::new("c.toml"), "[contexts.x]\nurls = []\n")
            .unwrap()
            .select(Some("x"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("lists no urls"), "{e}");
        let e = ConfigFile::parse(Path::new("c.toml"), "current-context = 3")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.toml"), "{e}");
    }

    #[test]
    fn the_default_location_follows_xdg_then_home() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        assert_eq!(
            default_path(env(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/h")])),
            Some(PathBuf::from("/x/quotactl/config.toml"))
        );
        assert_eq!(
            default_path(env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.config/quotactl/config.toml"))
        );
        assert_eq!(default_path(env(&[])), None);
    }

    #[test]
    fn use_context_rewrites_only_the_current_context() {
        let path = std::env::temp_dir().join(format!("quotactl-{}.toml", uuid::Uuid::new_v4()));
        std::fs::write(&path, FILE).unwrap();
        use_context(&path, "prod").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# operator's contexts"), "{text}");
        assert!(text.contains("current-context = \"prod\""), "{text}");
        assert!(use_context(&path, "qa").is_err());
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            text,
            "a refused switch writes nothing"
        );
        std::fs::remove_file(path).unwrap();
    }
}
