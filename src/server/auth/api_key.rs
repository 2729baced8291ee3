//! API keys sent in the `X-API-Key` header: 32 random bytes, shown to the user once and
//! stored only as a SHA-256 hash.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Header that carries an API key.
pub const HEADER: &str = "x-api-key";

/// Prefix of every key, so a leaked key is recognisable in logs and by secret scanners.
const PREFIX: &str = "imgstat_";

/// Generates a new raw key.
pub fn generate() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
}

/// Returns the lowercase hex SHA-256 of `raw_key`, the form the store keeps.
pub fn hash(raw_key: &str) -> String {
    hex::encode(Sha256::digest(raw_key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_differ() {
        let first = generate().unwrap();
        let second = generate().unwrap();

        assert!(first.starts_with(PREFIX));
        assert_eq!(first.len(), PREFIX.len() + 43);
        assert_ne!(first, second);
    }

    #[test]
    fn hash_is_hex_sha256() {
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
