//! Options of `imgstat serve`, from the command line or `IMGSTAT_*` environment variables.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::credential_key::KeyBytes;
use crate::registry::{AllowEntry, OutboundPolicy};

/// Default lifetime of a JWT: 8 hours.
const DEFAULT_JWT_LIFETIME_SECS: u64 = 8 * 60 * 60;

/// Command-line arguments of `imgstat serve`.
#[derive(Clone, Debug, clap::Args)]
pub struct ServeArgs {
    /// Address and port to listen on for HTTP requests.
    #[arg(long, env = "IMGSTAT_LISTEN", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,

    /// Directory for the database and the generated keys, created if missing
    /// [default: the user's data directory, e.g. ~/.local/share/imgstat on Linux].
    #[arg(long, env = "IMGSTAT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Secret that signs JWTs, at least 32 bytes. Without it, a random key is generated
    /// into the data directory at first start. Prefer the environment variable: other
    /// users of the machine can read a command line.
    #[arg(long, env = "IMGSTAT_JWT_SECRET", hide_env_values = true, value_parser = SecretParser::<JwtSecret>::new())]
    pub jwt_secret: Option<JwtSecret>,

    /// Key that seals registry passwords in the database: base64 of 32 bytes. Without it,
    /// a random key is generated into the data directory (credential.key) at first start.
    /// Starting with another key than the one the stored passwords were sealed with fails.
    #[arg(long, env = "IMGSTAT_CREDENTIAL_KEY", hide_env_values = true, value_parser = SecretParser::<KeyBytes>::new())]
    pub credential_key: Option<KeyBytes>,

    /// Lifetime of a JWT issued by POST /api/auth, in seconds.
    #[arg(long, env = "IMGSTAT_JWT_LIFETIME_SECS", default_value_t = DEFAULT_JWT_LIFETIME_SECS)]
    pub jwt_lifetime_secs: u64,

    /// How long a container's status and a tag's remote digest are cached, in seconds.
    #[arg(long, env = "IMGSTAT_STATUS_TTL_SECS", default_value_t = 300)]
    pub status_ttl_secs: u64,

    /// How long an `error` status and a registry failure are cached, in seconds, so that a
    /// registry that is down is not asked again at once.
    #[arg(long, env = "IMGSTAT_ERROR_TTL_SECS", default_value_t = 30)]
    pub error_ttl_secs: u64,

    /// How long a status request without force=true waits for a check, in milliseconds,
    /// before it answers `processing` while the check goes on.
    #[arg(long, env = "IMGSTAT_WAIT_BOUND_MS", default_value_t = 3000)]
    pub wait_bound_ms: u64,

    /// Requests in flight at once to one registry.
    #[arg(long, env = "IMGSTAT_MAX_IN_FLIGHT", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub max_in_flight: u64,

    /// Seconds one registry request may take once sent.
    #[arg(long, env = "IMGSTAT_REGISTRY_TIMEOUT", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub registry_timeout_secs: u64,

    /// A registry (HOST[:PORT]) that may be reached over plain HTTP or with an unverified
    /// certificate. Repeatable, or comma-separated in the variable. Loopback registries
    /// always may.
    #[arg(
        long = "insecure-registry",
        value_name = "HOST[:PORT]",
        env = "IMGSTAT_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,

    /// A host (HOST[:PORT]) or network (CIDR, such as 10.0.0.0/8) that registry requests
    /// may reach. Repeatable, or comma-separated in the variable. When given, requests to
    /// registries, token realms and redirect targets outside the list fail. Link-local and
    /// cloud metadata addresses are refused whatever the list contains.
    #[arg(
        long = "registry-allow",
        value_name = "HOST[:PORT]|CIDR",
        env = "IMGSTAT_REGISTRY_ALLOW",
        value_delimiter = ','
    )]
    pub registry_allow: Vec<AllowEntry>,
}

/// Parses a secret option with its `FromStr`, and on failure reports the option and the
/// reason but never the value, which clap's own message would repeat.
#[derive(Clone, Copy, Debug)]
pub struct SecretParser<T>(std::marker::PhantomData<fn() -> T>);

impl<T> SecretParser<T> {
    pub fn new() -> Self {
        Self(std::marker::PhantomData)
    }
}

impl<T> Default for SecretParser<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> clap::builder::TypedValueParser for SecretParser<T>
where
    T: FromStr<Err = String> + Clone + Send + Sync + 'static,
{
    type Value = T;

    fn parse_ref(
        &self,
        _command: &clap::Command,
        argument: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let name = argument.map_or_else(|| "the secret".to_owned(), secret_option_name);
        let invalid = |reason: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for {name} (value not shown): {reason}\n"),
            )
        };
        let text = value
            .to_str()
            .ok_or_else(|| invalid("it is not valid UTF-8".to_owned()))?;
        text.parse().map_err(invalid)
    }
}

/// Names an option as `--long-name (ENV_VAR)`, the two places a secret can come from.
fn secret_option_name(argument: &clap::Arg) -> String {
    let long = argument
        .get_long()
        .map_or_else(|| argument.get_id().to_string(), |l| format!("--{l}"));
    match argument.get_env() {
        Some(variable) => format!("{long} ({})", variable.to_string_lossy()),
        None => long,
    }
}

/// Secret for signing JWTs; its `Debug` output never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct JwtSecret(Vec<u8>);

impl JwtSecret {
    /// Minimum length in bytes, the output size of SHA-256 as RFC 7518 requires for HS256.
    pub const MIN_LEN: usize = 32;

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl FromStr for JwtSecret {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        if value.len() < Self::MIN_LEN {
            return Err(format!(
                "the JWT secret has {} bytes, expected at least {}",
                value.len(),
                Self::MIN_LEN
            ));
        }
        Ok(Self(value.as_bytes().to_vec()))
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret(<redacted>)")
    }
}

/// Settings the server runs with, after defaults are resolved.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Signing secret for JWTs; `None` means the key file in `data_dir`.
    pub jwt_secret: Option<JwtSecret>,
    pub jwt_lifetime: Duration,
    /// Key that seals registry passwords; `None` means the key file in `data_dir`.
    pub credential_key: Option<KeyBytes>,
    /// Caches and wait bound of status requests.
    pub status: crate::status::ServiceConfig,
    /// Limits of registry requests.
    pub registry: crate::registry::RegistryConfig,
}

/// Failure to turn [`ServeArgs`] into a [`ServerConfig`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "no data directory given and the user's data directory is unknown \
         (is HOME set?); pass --data-dir or set IMGSTAT_DATA_DIR"
    )]
    NoDataDir,
}

impl ServerConfig {
    /// Builds a configuration with the default options and the given data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 9000)),
            data_dir: data_dir.into(),
            jwt_secret: None,
            jwt_lifetime: Duration::from_secs(DEFAULT_JWT_LIFETIME_SECS),
            credential_key: None,
            status: crate::status::ServiceConfig::default(),
            registry: crate::registry::RegistryConfig::default(),
        }
    }
}

impl TryFrom<ServeArgs> for ServerConfig {
    type Error = ConfigError;

    fn try_from(args: ServeArgs) -> Result<Self, Self::Error> {
        let data_dir = match args.data_dir {
            Some(dir) => dir,
            None => default_data_dir().ok_or(ConfigError::NoDataDir)?,
        };
        Ok(Self {
            listen: args.listen,
            data_dir,
            jwt_secret: args.jwt_secret,
            jwt_lifetime: Duration::from_secs(args.jwt_lifetime_secs),
            credential_key: args.credential_key,
            status: crate::status::ServiceConfig {
                status_ttl: Duration::from_secs(args.status_ttl_secs),
                error_ttl: Duration::from_secs(args.error_ttl_secs),
                wait_bound: Duration::from_millis(args.wait_bound_ms),
            },
            registry: crate::registry::RegistryConfig {
                max_in_flight: usize::try_from(args.max_in_flight).unwrap_or(usize::MAX),
                request_timeout: Duration::from_secs(args.registry_timeout_secs),
                insecure_registries: args.insecure_registries,
                outbound: OutboundPolicy::from_allow_list(args.registry_allow),
                ..crate::registry::RegistryConfig::default()
            },
        })
    }
}

/// Returns the platform's per-user data directory for imgstat.
pub fn default_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "imgstat").map(|dirs| dirs.data_dir().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_jwt_secret_is_rejected() {
        let error = "too short".parse::<JwtSecret>().unwrap_err();

        assert!(error.contains("at least 32"), "{error}");
    }

    #[test]
    fn jwt_secret_debug_hides_value() {
        let secret: JwtSecret = "a secret that is long enough for HS256".parse().unwrap();

        assert_eq!(format!("{secret:?}"), "JwtSecret(<redacted>)");
    }
}
