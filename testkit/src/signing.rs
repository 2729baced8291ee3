//! The token server's RSA signing key, its self-signed certificate (the registry's
//! `rootcertbundle`) and its key id in the libtrust form that distribution checks.

use std::path::{Path, PathBuf};
use std::process::Command;

use data_encoding::BASE32_NOPAD;
use jsonwebtoken::EncodingKey;
use sha2::{Digest, Sha256};

use crate::command::run;

/// A 2048-bit RSA key pair written as PEM files into a directory the caller owns.
pub(crate) struct SigningKey {
    pub(crate) encoding_key: EncodingKey,
    pub(crate) key_id: String,
    pub(crate) cert_path: PathBuf,
}

impl SigningKey {
    /// Generates a key and a self-signed certificate in `dir` with the `openssl` CLI.
    pub(crate) fn generate(dir: &Path) -> Self {
        let key_path = dir.join("token-signing.key");
        let cert_path = dir.join("token-signing.crt");
        run(Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", "/CN=imgstat-testkit token signer"])
            .arg("-keyout")
            .arg(&key_path)
            .arg("-out")
            .arg(&cert_path));

        let spki_der_path = dir.join("token-signing.pub.der");
        run(Command::new("openssl")
            .args(["pkey", "-pubout", "-outform", "DER", "-in"])
            .arg(&key_path)
            .arg("-out")
            .arg(&spki_der_path));

        let key_pem = read(&key_path);
        let encoding_key = EncodingKey::from_rsa_pem(&key_pem)
            .unwrap_or_else(|error| panic!("invalid RSA key in {}: {error}", key_path.display()));
        let key_id = libtrust_key_id(&read(&spki_der_path));

        Self {
            encoding_key,
            key_id,
            cert_path,
        }
    }
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|error| panic!("failed to read {}: {error}", path.display()))
}

/// Returns the libtrust key id of a public key given as SPKI DER: base32 (RFC 4648,
/// no padding) of the first 30 bytes of its SHA-256, in 12 groups of 4 joined by `:`.
pub(crate) fn libtrust_key_id(spki_der: &[u8]) -> String {
    let hash = Sha256::digest(spki_der);
    let encoded = BASE32_NOPAD.encode(&hash[..30]);
    let groups: Vec<&str> = encoded
        .as_bytes()
        .chunks(4)
        .map(|chunk| std::str::from_utf8(chunk).expect("base32 output is ASCII"))
        .collect();
    groups.join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_id_has_twelve_groups_of_four() {
        let key_id = libtrust_key_id(b"any bytes");

        let groups: Vec<&str> = key_id.split(':').collect();
        assert_eq!(groups.len(), 12, "{key_id}");
        assert!(groups.iter().all(|group| group.len() == 4), "{key_id}");
    }

    #[test]
    fn key_id_is_base32_of_truncated_sha256() {
        let hash = Sha256::digest(b"any bytes");
        let expected = BASE32_NOPAD.encode(&hash[..30]);

        assert_eq!(libtrust_key_id(b"any bytes").replace(':', ""), expected);
    }
}
