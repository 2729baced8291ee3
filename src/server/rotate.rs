//! `imgstat rotate-credential-key`: re-seals every stored registry password with a new
//! credential key in one transaction, while no server runs on the data directory.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::config::SecretParser;
use super::config::default_data_dir;
use super::credential_key::{
    self, CREDENTIAL_KEY_ENV, CredentialKey, CredentialKeyError, KeyBytes, KeyOrigin,
    NEW_CREDENTIAL_KEY_FILE,
};
use super::run::{LOCK_FILE, open_lock_file};
use super::store::{DATABASE_FILE, Store, StoreError};

/// Environment variable with the new key, for a key given in `IMGSTAT_CREDENTIAL_KEY`.
pub const NEW_CREDENTIAL_KEY_ENV: &str = "IMGSTAT_NEW_CREDENTIAL_KEY";

/// Command-line arguments of `imgstat rotate-credential-key`.
#[derive(Clone, Debug, clap::Args)]
pub struct RotateArgs {
    /// Data directory of the server whose key to rotate
    /// [default: the user's data directory, e.g. ~/.local/share/imgstat on Linux].
    #[arg(long, env = "IMGSTAT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// The current key (base64 of 32 bytes), when the server takes it from this variable
    /// instead of the key file. Prefer the environment variable to the option.
    #[arg(long, env = "IMGSTAT_CREDENTIAL_KEY", hide_env_values = true, value_parser = SecretParser::<KeyBytes>::new())]
    pub credential_key: Option<KeyBytes>,

    /// The new key (base64 of 32 bytes), required with IMGSTAT_CREDENTIAL_KEY. Without
    /// IMGSTAT_CREDENTIAL_KEY, the new key is generated into the key file instead.
    #[arg(long, env = "IMGSTAT_NEW_CREDENTIAL_KEY", hide_env_values = true, value_parser = SecretParser::<KeyBytes>::new())]
    pub new_credential_key: Option<KeyBytes>,
}

/// The location of the new key after a rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NewKeyLocation {
    /// The key file, which now contains the new key.
    File(PathBuf),
    /// The variable the caller passed it in; the server must now start with it.
    Environment,
}

/// The result of a rotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Number of passwords re-sealed.
    pub resealed: usize,
    pub new_key: NewKeyLocation,
}

impl std::fmt::Display for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "re-sealed {} registry passwords with the new credential key",
            self.resealed
        )?;
        match &self.new_key {
            NewKeyLocation::File(path) => {
                write!(f, "; the key file {} contains it", path.display())
            }
            NewKeyLocation::Environment => write!(
                f,
                "; start the server with {CREDENTIAL_KEY_ENV} set to the value of \
                 {NEW_CREDENTIAL_KEY_ENV}"
            ),
        }
    }
}

/// Failure of a key rotation. Until the transaction commits, the old key stays in place.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(
        "no data directory given and the user's data directory is unknown (is HOME set?); \
         pass --data-dir or set IMGSTAT_DATA_DIR"
    )]
    NoDataDir,

    #[error("no database {} found; pass the data directory of the server with --data-dir", path.display())]
    NoDatabase { path: PathBuf },

    #[error(
        "a server is running on the data directory {}; stop it before rotating the key",
        path.display()
    )]
    ServerRunning { path: PathBuf },

    #[error(
        "the current key comes from {CREDENTIAL_KEY_ENV}, where imgstat cannot write a new \
         one; pass the new key in {NEW_CREDENTIAL_KEY_ENV} (generate it with \
         `head -c 32 /dev/urandom | base64`)"
    )]
    NewKeyRequired,

    #[error(
        "{NEW_CREDENTIAL_KEY_ENV} applies only with {CREDENTIAL_KEY_ENV}; unset it to \
         generate the new key into the key file"
    )]
    NewKeyWithKeyFile,

    #[error("the new key is the current key; pass a different {NEW_CREDENTIAL_KEY_ENV}")]
    SameKey,

    #[error("failed to lock or write {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),

    #[error(transparent)]
    CurrentKey(#[from] CredentialKeyError),

    #[error("failed to re-seal the stored passwords; the old key is still in use")]
    Reseal(#[source] StoreError),

    #[error("failed to open the store")]
    Store(#[from] StoreError),
}

/// Rotates the credential key of a data directory. It checks the current key, and re-seals
/// every password and the key check value with the new key in one transaction. For a key
/// file, it then renames the new key file over the old one.
///
/// A crash after the commit and before the rename leaves the new key in
/// `credential.key.new`, which the next start or rotation moves into place.
pub async fn rotate_credential_key(args: RotateArgs) -> Result<Rotation, RotateError> {
    let data_dir = match args.data_dir {
        Some(dir) => dir,
        None => default_data_dir().ok_or(RotateError::NoDataDir)?,
    };
    let database = data_dir.join(DATABASE_FILE);
    if !database.exists() {
        return Err(RotateError::NoDatabase { path: database });
    }
    let _lock = lock_exclusive(&data_dir)?;

    let store = Store::open(&data_dir).await?;
    let result = rotate_with_store(
        &data_dir,
        &store,
        args.credential_key,
        args.new_credential_key,
    )
    .await;
    store.close().await;
    result
}

async fn rotate_with_store(
    data_dir: &Path,
    store: &Store,
    current: Option<KeyBytes>,
    new: Option<KeyBytes>,
) -> Result<Rotation, RotateError> {
    let old_key = credential_key::load(data_dir, current.as_ref(), store).await?;

    match old_key.origin() {
        KeyOrigin::Environment => {
            let new_bytes = new.ok_or(RotateError::NewKeyRequired)?;
            if Some(&new_bytes) == current.as_ref() {
                return Err(RotateError::SameKey);
            }
            let new_key = CredentialKey::new(&new_bytes, KeyOrigin::Environment);
            let resealed = store
                .reseal_credentials(&old_key, &new_key)
                .await
                .map_err(RotateError::Reseal)?;
            log_rotated(resealed, "the new key in IMGSTAT_NEW_CREDENTIAL_KEY");
            Ok(Rotation {
                resealed,
                new_key: NewKeyLocation::Environment,
            })
        }
        KeyOrigin::File(key_path) => {
            if new.is_some() {
                return Err(RotateError::NewKeyWithKeyFile);
            }
            let new_bytes = KeyBytes::generate().map_err(RotateError::Random)?;
            let new_path = data_dir.join(NEW_CREDENTIAL_KEY_FILE);
            write_key_file(&new_path, &new_bytes)?;
            let new_key = CredentialKey::new(&new_bytes, KeyOrigin::File(new_path.clone()));

            let resealed = match store.reseal_credentials(&old_key, &new_key).await {
                Ok(resealed) => resealed,
                Err(error) => {
                    // The transaction rolled back, so the old key file stays the key.
                    let _ = std::fs::remove_file(&new_path);
                    return Err(RotateError::Reseal(error));
                }
            };

            let key_path = key_path.clone();
            replace_key_file(&new_path, &key_path, data_dir)?;
            log_rotated(resealed, &key_path.display().to_string());
            Ok(Rotation {
                resealed,
                new_key: NewKeyLocation::File(key_path),
            })
        }
    }
}

fn log_rotated(resealed: usize, new_key: &str) {
    tracing::info!(resealed, new_key, "credential key rotated");
}

/// Takes the data directory's lock alone, which fails while a server holds it shared.
fn lock_exclusive(data_dir: &Path) -> Result<File, RotateError> {
    let path = data_dir.join(LOCK_FILE);
    let file = open_lock_file(&path).map_err(|source| RotateError::Io {
        path: path.clone(),
        source,
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(RotateError::ServerRunning {
            path: data_dir.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(RotateError::Io { path, source }),
    }
}

/// Writes a key file with mode 0600 and syncs it, replacing a leftover from an earlier run.
fn write_key_file(path: &Path, key: &KeyBytes) -> Result<(), RotateError> {
    let io_error = |source| RotateError::Io {
        path: path.to_owned(),
        source,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io_error(error)),
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error)?;
    file.write_all(key.as_bytes()).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}

/// Renames the new key file over the old one and syncs the directory, so the rename
/// survives a crash.
fn replace_key_file(new_path: &Path, key_path: &Path, data_dir: &Path) -> Result<(), RotateError> {
    std::fs::rename(new_path, key_path).map_err(|source| RotateError::Io {
        path: key_path.to_owned(),
        source,
    })?;
    File::open(data_dir)
        .and_then(|directory| directory.sync_all())
        .map_err(|source| RotateError::Io {
            path: data_dir.to_owned(),
            source,
        })
}
