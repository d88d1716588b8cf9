//! Password files the bootstrap creates: random, mode 0600, created once and then kept.

use std::io::Write;
use std::path::Path;

use quota_shared::secret::{Secret, SecretError};

/// Reads the secret at `path`, or, if there is no file, creates one (mode 0600) holding a
/// fresh random secret of 64 hex digits and returns that.
pub fn ensure_secret_file(path: &Path) -> Result<Secret, SecretError> {
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
    Ok(Secret::new(fresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_is_created_once_private_and_read_back() {
        let dir = std::env::temp_dir().join(format!("quota-secret-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.password");
        let made = ensure_secret_file(&path).unwrap();
        assert_eq!(made.expose().len(), 64);
        assert_eq!(
            ensure_secret_file(&path).unwrap(),
            made,
            "kept, not replaced"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
