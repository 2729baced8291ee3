//! Secret key files in the data directory: created once with random bytes and mode 0600.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Failure to read or create a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("failed to read or create the key file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error(
        "the key file {path} has mode {mode:o}, readable by other users; \
         run `chmod 600 {path}` or remove the file to generate a new key"
    )]
    Permissions { path: PathBuf, mode: u32 },

    #[error(
        "the key file {path} contains {actual} bytes, expected {expected}; \
         remove the file to generate a new key"
    )]
    Length {
        path: PathBuf,
        actual: usize,
        expected: usize,
    },

    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Reads the key in `path`, or creates the file with `len` random bytes when it is missing.
///
/// An existing file must be readable by its owner only and contain exactly `len` bytes.
pub fn load_or_create(path: &Path, len: usize) -> Result<Vec<u8>, KeyFileError> {
    let io_error = |source| KeyFileError::Io {
        path: path.to_owned(),
        source,
    };

    let mut key = vec![0; len];
    getrandom::fill(&mut key).map_err(KeyFileError::Random)?;

    // `create_new` fails if the file exists, so two processes starting on one data
    // directory cannot both write a key: the loser reads the winner's.
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(mut file) => {
            file.write_all(&key).map_err(io_error)?;
            file.sync_all().map_err(io_error)?;
            return Ok(key);
        }
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {}
        Err(error) => return Err(io_error(error)),
    }

    let mode = fs::metadata(path).map_err(io_error)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }

    let key = fs::read(path).map_err(io_error)?;
    if key.len() != len {
        return Err(KeyFileError::Length {
            path: path.to_owned(),
            actual: key.len(),
            expected: len,
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_key_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.key");

        let key = load_or_create(&path, 32).unwrap();

        assert_eq!(key.len(), 32);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn second_load_returns_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.key");

        let first = load_or_create(&path, 32).unwrap();
        let second = load_or_create(&path, 32).unwrap();

        assert_eq!(first, second);
    }

    #[test]
    fn rejects_group_readable_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.key");
        load_or_create(&path, 32).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();

        let error = load_or_create(&path, 32).unwrap_err();

        assert!(matches!(
            error,
            KeyFileError::Permissions { mode: 0o640, .. }
        ));
    }

    #[test]
    fn rejects_key_of_wrong_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.key");
        load_or_create(&path, 16).unwrap();

        let error = load_or_create(&path, 32).unwrap_err();

        assert!(matches!(
            error,
            KeyFileError::Length {
                actual: 16,
                expected: 32,
                ..
            }
        ));
    }
}
