//! The key that seals registry passwords in the store with XChaCha20-Poly1305: where it
//! comes from (a key file in the data directory or `IMGSTAT_CREDENTIAL_KEY`), and the
//! check that it is the key the stored passwords were sealed with.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{KeyInit, XChaCha20Poly1305, XNonce};

use super::key_file::{self, KeyFileError};
use super::store::{Store, StoreError};

/// File in the data directory that contains the generated credential key.
pub const CREDENTIAL_KEY_FILE: &str = "credential.key";

/// File that contains the new key while a key rotation runs, renamed over
/// [`CREDENTIAL_KEY_FILE`] once the store is re-sealed.
pub const NEW_CREDENTIAL_KEY_FILE: &str = "credential.key.new";

/// Environment variable with the base64 credential key, used in place of the key file.
pub const CREDENTIAL_KEY_ENV: &str = "IMGSTAT_CREDENTIAL_KEY";

/// Length of a credential key, in bytes.
pub const KEY_LEN: usize = 32;

/// Length of the random nonce stored in front of each sealed value, in bytes.
const NONCE_LEN: usize = 24;

/// Known plaintext sealed into the store, so that a start with another key fails at once.
const CHECK_PLAINTEXT: &[u8] = b"imgstat credential key check";

/// Associated data of the key check value.
const CHECK_ASSOCIATED_DATA: &[u8] = b"imgstat credential key check v1";

/// The origin of a credential key, for error messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyOrigin {
    File(PathBuf),
    Environment,
}

impl fmt::Display for KeyOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::File(path) => write!(f, "the key file {}", path.display()),
            Self::Environment => write!(f, "the key in {CREDENTIAL_KEY_ENV}"),
        }
    }
}

/// The raw bytes of a credential key, as given in an environment variable. `Debug` never
/// shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyBytes([u8; KEY_LEN]);

impl KeyBytes {
    /// Generates a key from the operating system's random number generator.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0; KEY_LEN];
        getrandom::fill(&mut bytes)?;
        Ok(Self(bytes))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Returns the key in standard base64, the form `IMGSTAT_CREDENTIAL_KEY` takes.
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

/// Parses standard base64 of exactly 32 bytes. The error never repeats the value.
impl FromStr for KeyBytes {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let help = "generate one with `head -c 32 /dev/urandom | base64`";
        let decoded = BASE64
            .decode(value.trim())
            .map_err(|_| format!("the credential key is not valid base64; {help}"))?;
        let bytes: [u8; KEY_LEN] = decoded.as_slice().try_into().map_err(|_| {
            format!(
                "the credential key has {} bytes, expected {KEY_LEN}; {help}",
                decoded.len()
            )
        })?;
        Ok(Self(bytes))
    }
}

impl fmt::Debug for KeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyBytes(<redacted>)")
    }
}

/// A credential key ready to seal and open values. `Debug` shows only its origin.
pub struct CredentialKey {
    cipher: XChaCha20Poly1305,
    origin: KeyOrigin,
}

impl fmt::Debug for CredentialKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialKey")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

/// Failure to seal or open a value.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the operating system's random number generator failed: {0}")]
    Random(getrandom::Error),

    #[error("encryption failed")]
    Encrypt,

    /// The value was sealed with another key or other associated data, or was altered.
    #[error("the sealed value does not open with {origin}")]
    Open { origin: KeyOrigin },
}

impl CredentialKey {
    pub fn new(bytes: &KeyBytes, origin: KeyOrigin) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(&bytes.0.into()),
            origin,
        }
    }

    pub fn origin(&self) -> &KeyOrigin {
        &self.origin
    }

    /// Encrypts `plaintext` under a fresh random nonce and returns the nonce followed by
    /// the ciphertext and tag. Opening needs the same `associated_data`.
    pub fn seal(&self, plaintext: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(SealError::Random)?;
        let payload = Payload {
            msg: plaintext,
            aad: associated_data,
        };
        let ciphertext = self
            .cipher
            .encrypt(&XNonce::from(nonce), payload)
            .map_err(|_| SealError::Encrypt)?;

        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts a value made by [`CredentialKey::seal`] with the same associated data.
    pub fn open(&self, sealed: &[u8], associated_data: &[u8]) -> Result<Vec<u8>, SealError> {
        let wrong = || SealError::Open {
            origin: self.origin.clone(),
        };
        if sealed.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| wrong())?;
        let payload = Payload {
            msg: ciphertext,
            aad: associated_data,
        };
        self.cipher
            .decrypt(&XNonce::from(nonce), payload)
            .map_err(|_| wrong())
    }

    /// Seals the key check value that [`load`] verifies at each start.
    pub fn seal_check_value(&self) -> Result<Vec<u8>, SealError> {
        self.seal(CHECK_PLAINTEXT, CHECK_ASSOCIATED_DATA)
    }

    /// Tells whether `sealed` is the key check value sealed with this key.
    pub fn opens_check_value(&self, sealed: &[u8]) -> bool {
        self.open(sealed, CHECK_ASSOCIATED_DATA)
            .is_ok_and(|plaintext| plaintext == CHECK_PLAINTEXT)
    }
}

/// Failure to load the credential key at start.
#[derive(Debug, thiserror::Error)]
pub enum CredentialKeyError {
    #[error("failed to load the credential key")]
    KeyFile(#[from] KeyFileError),

    #[error(
        "the credential key file {} is missing, but the database contains registry \
         passwords sealed with a key; restore the file from a backup, or set {CREDENTIAL_KEY_ENV} \
         to the key",
        path.display()
    )]
    Missing { path: PathBuf },

    #[error(
        "{origin} is not the key that sealed the registry passwords in the database; start \
         with that key (restore the key file from a backup, or set {CREDENTIAL_KEY_ENV} to \
         it), since the stored passwords cannot be read without it"
    )]
    WrongKey { origin: KeyOrigin },

    #[error("failed to seal the credential key check value")]
    Seal(#[from] SealError),

    #[error("failed to read or write the credential key check value")]
    Store(#[from] StoreError),

    #[error("failed to finish an interrupted key rotation: renaming {} failed", path.display())]
    FinishRotation {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Loads the credential key of `data_dir`, `from_environment` in place of the key file when
/// given, and checks it against the key check value in the store. The first start stores
/// the check value, and generates the key file when no key is given.
///
/// A key that does not open the check value is an error, so a wrong key never hides the
/// stored passwords. One exception: when the key file fails the check and the file left
/// by an interrupted rotation passes it, that rotation committed, so the new file replaces
/// the old one.
pub async fn load(
    data_dir: &Path,
    from_environment: Option<&KeyBytes>,
    store: &Store,
) -> Result<CredentialKey, CredentialKeyError> {
    let check_value = store.credential_key_check().await?;

    let key = match from_environment {
        Some(bytes) => CredentialKey::new(bytes, KeyOrigin::Environment),
        None => {
            let path = data_dir.join(CREDENTIAL_KEY_FILE);
            if check_value.is_some() && !path.exists() {
                return Err(CredentialKeyError::Missing { path });
            }
            read_key_file(&path)?
        }
    };

    let Some(check_value) = check_value else {
        let sealed = key.seal_check_value()?;
        let stored = store.insert_credential_key_check(&sealed).await?;
        // Another process may have stored its check value first.
        if !key.opens_check_value(&stored) {
            return Err(CredentialKeyError::WrongKey {
                origin: key.origin.clone(),
            });
        }
        return Ok(key);
    };
    if key.opens_check_value(&check_value) {
        return Ok(key);
    }

    if from_environment.is_none()
        && let Some(key) = finish_interrupted_rotation(data_dir, &check_value)?
    {
        return Ok(key);
    }
    Err(CredentialKeyError::WrongKey {
        origin: key.origin.clone(),
    })
}

/// Reads a key file, creating it with a random key (mode 0600) when it is missing.
pub(crate) fn read_key_file(path: &Path) -> Result<CredentialKey, KeyFileError> {
    let bytes = key_file::load_or_create(path, KEY_LEN)?;
    let bytes: [u8; KEY_LEN] = bytes
        .try_into()
        .expect("load_or_create returns exactly KEY_LEN bytes");
    Ok(CredentialKey::new(
        &KeyBytes(bytes),
        KeyOrigin::File(path.to_owned()),
    ))
}

/// Finishes a rotation that committed before its new key file was renamed into place, and
/// returns the new key. Returns `None` when there is no such file or it fails the check too.
fn finish_interrupted_rotation(
    data_dir: &Path,
    check_value: &[u8],
) -> Result<Option<CredentialKey>, CredentialKeyError> {
    let new_path = data_dir.join(NEW_CREDENTIAL_KEY_FILE);
    if !new_path.exists() {
        return Ok(None);
    }
    let Ok(new_key) = read_key_file(&new_path) else {
        return Ok(None);
    };
    if !new_key.opens_check_value(check_value) {
        return Ok(None);
    }

    let path = data_dir.join(CREDENTIAL_KEY_FILE);
    std::fs::rename(&new_path, &path).map_err(|source| CredentialKeyError::FinishRotation {
        path: new_path.clone(),
        source,
    })?;
    tracing::warn!(
        key_file = %path.display(),
        "finished an interrupted credential key rotation: the new key file replaced the old one"
    );
    Ok(Some(read_key_file(&path)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CredentialKey {
        CredentialKey::new(&KeyBytes::generate().unwrap(), KeyOrigin::Environment)
    }

    #[test]
    fn sealed_value_opens_with_same_key_and_data() {
        let key = key();

        let sealed = key.seal(b"hunter2", b"row 1").unwrap();

        assert_eq!(key.open(&sealed, b"row 1").unwrap(), b"hunter2");
        assert!(!sealed.windows(7).any(|window| window == b"hunter2"));
    }

    #[test]
    fn open_fails_with_other_data_or_key() {
        let key = key();
        let sealed = key.seal(b"hunter2", b"row 1").unwrap();

        assert!(key.open(&sealed, b"row 2").is_err());
        assert!(self::key().open(&sealed, b"row 1").is_err());
        assert!(key.open(&sealed[..10], b"row 1").is_err());
    }

    #[test]
    fn each_seal_uses_a_new_nonce() {
        let key = key();

        let first = key.seal(b"hunter2", b"row 1").unwrap();
        let second = key.seal(b"hunter2", b"row 1").unwrap();

        assert_ne!(first, second);
    }

    #[test]
    fn check_value_identifies_the_key() {
        let key = key();
        let check = key.seal_check_value().unwrap();

        assert!(key.opens_check_value(&check));
        assert!(!self::key().opens_check_value(&check));
    }

    #[test]
    fn key_bytes_parse_base64_of_32_bytes() {
        let bytes = KeyBytes::generate().unwrap();

        assert_eq!(bytes.to_base64().parse::<KeyBytes>().unwrap(), bytes);
        let short = "c2hvcnQ=".parse::<KeyBytes>().unwrap_err();
        assert!(short.contains("has 5 bytes, expected 32"), "{short}");
        let invalid = "not base64!".parse::<KeyBytes>().unwrap_err();
        assert!(invalid.contains("not valid base64"), "{invalid}");
        assert!(!invalid.contains("not base64!"), "{invalid}");
    }

    #[test]
    fn debug_hides_key_bytes() {
        let bytes: KeyBytes = BASE64.encode([7u8; KEY_LEN]).parse().unwrap();

        assert_eq!(format!("{bytes:?}"), "KeyBytes(<redacted>)");
        let key = CredentialKey::new(&bytes, KeyOrigin::Environment);
        assert!(!format!("{key:?}").contains("7, 7"), "{key:?}");
    }
}
