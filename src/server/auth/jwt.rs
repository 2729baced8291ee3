//! JSON Web Tokens issued by `POST /api/auth`: HS256, with the user id as subject.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// Value of the `iss` claim of every token this service issues.
const ISSUER: &str = "imgstat";

/// Keys and lifetime for issuing and verifying JWTs.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime: Duration,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    iss: String,
    iat: u64,
    exp: u64,
}

impl JwtKeys {
    /// Builds the keys from a shared secret; tokens expire `lifetime` after they are issued.
    pub fn new(secret: &[u8], lifetime: Duration) -> Result<Self, jsonwebtoken::errors::Error> {
        // jsonwebtoken panics at the first signature when cargo's feature unification enables
        // both of its crypto backends, as a dependency asking for the other one does. Naming
        // the backend avoids that. A provider installed earlier stays, and any one does HS256.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();

        let mut validation = Validation::new(Algorithm::HS256);
        // The same process issues and verifies tokens, so there is no clock skew to allow for.
        validation.leeway = 0;
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "sub", "iss"]);

        Ok(Self {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            validation,
            lifetime,
        })
    }

    /// Issues a token for `user_id`.
    pub fn issue(&self, user_id: i64) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: user_id.to_string(),
            iss: ISSUER.to_owned(),
            iat: now,
            exp: now.saturating_add(self.lifetime.as_secs()),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// Checks the signature, issuer and expiry of `token` and returns the user id it names.
    pub fn verify(&self, token: &str) -> Result<i64, jsonwebtoken::errors::Error> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)?;
        data.claims.sub.parse().map_err(|_| {
            jsonwebtoken::errors::ErrorKind::InvalidClaimFormat("sub".to_owned()).into()
        })
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::errors::ErrorKind;

    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn issued_token_verifies() {
        let keys = JwtKeys::new(SECRET, Duration::from_secs(60)).unwrap();

        let token = keys.issue(42).unwrap();

        assert_eq!(keys.verify(&token).unwrap(), 42);
    }

    #[test]
    fn token_of_other_secret_fails() {
        let keys = JwtKeys::new(SECRET, Duration::from_secs(60)).unwrap();
        let other =
            JwtKeys::new(b"another secret of 32 bytes or so", Duration::from_secs(60)).unwrap();

        let error = keys.verify(&other.issue(42).unwrap()).unwrap_err();

        assert_eq!(error.kind(), &ErrorKind::InvalidSignature);
    }

    #[test]
    fn token_with_zero_lifetime_is_expired() {
        let keys = JwtKeys::new(SECRET, Duration::ZERO).unwrap();
        let token = keys.issue(42).unwrap();
        std::thread::sleep(Duration::from_millis(1100));

        let error = keys.verify(&token).unwrap_err();

        assert_eq!(error.kind(), &ErrorKind::ExpiredSignature);
    }
}
