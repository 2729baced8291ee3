//! Image references as Docker normalises them: `nginx` is `docker.io/library/nginx:latest`.
//!
//! Parsing is delegated to `oci_client::Reference`, a port of Docker's own grammar. This
//! module adds the Docker Hub API host, clear error messages, and the tag and digest cases
//! the status rules need.

use std::fmt;

use oci_client::{ParseError, Reference};

/// The name Docker gives to Docker Hub in normalised references.
pub const DOCKER_HUB: &str = "docker.io";

/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// A normalised image reference: registry host, repository, and a tag, a digest or both.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// The error for a string that is not an image reference.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid image reference {input:?}: {reason}; expected [HOST[:PORT]/]NAME[:TAG][@sha256:DIGEST]"
)]
pub struct ReferenceError {
    /// The text that failed to parse.
    pub input: String,
    /// The parser's reason.
    pub reason: ParseError,
}

impl ImageRef {
    /// Parses and normalises a reference as `docker pull` does. A reference without tag or
    /// digest gets the tag `latest`; one with a digest and no tag keeps no tag.
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        let invalid = |reason| ReferenceError {
            input: input.to_owned(),
            reason,
        };

        // The grammar of oci-client predates bracketed IPv6 hosts, which Docker accepts
        // (`[::1]:5000/app`): parse with a stand-in host and put the real one back.
        let (ipv6_host, parseable) = split_ipv6_host(input);
        let parsed = Reference::try_from(parseable.as_ref()).map_err(invalid)?;
        if parsed.repository().bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid(ParseError::NameContainsUppercase));
        }

        let registry = match ipv6_host {
            Some(host) => host.to_owned(),
            None => canonical_registry(parsed.registry()).to_owned(),
        };
        Ok(Self {
            registry,
            repository: parsed.repository().to_owned(),
            tag: parsed.tag().map(str::to_owned),
            digest: parsed.digest().map(str::to_owned),
        })
    }

    /// Builds a reference to `repository:tag` on `registry` without parsing.
    pub fn with_tag(registry: &str, repository: &str, tag: &str) -> Self {
        Self {
            registry: canonical_registry(registry).to_owned(),
            repository: repository.to_owned(),
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }

    /// Returns the registry as written in normalised references (`docker.io`,
    /// `127.0.0.1:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Returns the host and port that serve the registry API (`registry-1.docker.io` for
    /// Docker Hub).
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// Returns the repository path, with `library/` for one-component names on Docker Hub.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// `registry/repository` without tag or digest: the name `RepoDigests` entries carry.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// Returns whether `other` names the same repository on the same registry.
    pub fn same_repository(&self, other: &ImageRef) -> bool {
        self.registry == other.registry && self.repository == other.repository
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// A host name that cannot occur in a real reference, used while parsing IPv6 hosts.
const IPV6_STAND_IN: &str = "ipv6.host.invalid";

/// Splits a leading `[ipv6]` or `[ipv6]:port` host off `input` and returns it with the
/// input rewritten to use a stand-in host name with the same port.
fn split_ipv6_host(input: &str) -> (Option<&str>, std::borrow::Cow<'_, str>) {
    let Some((host, rest)) = input.split_once('/') else {
        return (None, input.into());
    };
    let Some(end) = host.strip_prefix('[').and_then(|h| h.find(']')) else {
        return (None, input.into());
    };
    let address = &host[1..end + 1];
    let port = &host[end + 2..];
    if address.parse::<std::net::Ipv6Addr>().is_err() || !(port.is_empty() || port.starts_with(':'))
    {
        return (None, input.into());
    }
    (Some(host), format!("{IPV6_STAND_IN}{port}/{rest}").into())
}

/// Maps Docker Hub's aliases to `docker.io` and leaves every other host as it is.
pub fn canonical_registry(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            DOCKER_HUB
        }
        other => other,
    }
}

/// Maps a registry name to the host that serves its API.
pub fn api_host(registry: &str) -> &str {
    match canonical_registry(registry) {
        DOCKER_HUB => DOCKER_HUB_API_HOST,
        other => other,
    }
}

/// Returns whether `text` looks like an image ID (`sha256:<hex>` or a hex prefix of at least 12
/// characters) rather than a name.
pub fn looks_like_image_id(text: &str) -> bool {
    let hex = text.strip_prefix("sha256:").unwrap_or(text);
    (12..=64).contains(&hex.len()) && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000001";

    #[test]
    fn parse_normalises_like_docker() {
        // (input, registry, api host, repository, tag, digest)
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            (
                "nginx",
                "docker.io",
                "registry-1.docker.io",
                "library/nginx",
                Some("latest"),
                None,
            ),
            (
                "nginx:1.27",
                "docker.io",
                "registry-1.docker.io",
                "library/nginx",
                Some("1.27"),
                None,
            ),
            (
                "bitnami/redis",
                "docker.io",
                "registry-1.docker.io",
                "bitnami/redis",
                Some("latest"),
                None,
            ),
            (
                "docker.io/nginx",
                "docker.io",
                "registry-1.docker.io",
                "library/nginx",
                Some("latest"),
                None,
            ),
            (
                "index.docker.io/library/nginx:1",
                "docker.io",
                "registry-1.docker.io",
                "library/nginx",
                Some("1"),
                None,
            ),
            (
                "localhost/app",
                "localhost",
                "localhost",
                "app",
                Some("latest"),
                None,
            ),
            (
                "localhost:5000/app:v1",
                "localhost:5000",
                "localhost:5000",
                "app",
                Some("v1"),
                None,
            ),
            (
                "127.0.0.1:5000/team/app:v1",
                "127.0.0.1:5000",
                "127.0.0.1:5000",
                "team/app",
                Some("v1"),
                None,
            ),
            (
                "ghcr.io/owner/app",
                "ghcr.io",
                "ghcr.io",
                "owner/app",
                Some("latest"),
                None,
            ),
            (
                "quay.io/a/b/c:tag",
                "quay.io",
                "quay.io",
                "a/b/c",
                Some("tag"),
                None,
            ),
            (
                "[::1]:5000/app:v2",
                "[::1]:5000",
                "[::1]:5000",
                "app",
                Some("v2"),
                None,
            ),
            // A first component without `.`, `:` or `localhost` is a Docker Hub namespace.
            (
                "registry/app",
                "docker.io",
                "registry-1.docker.io",
                "registry/app",
                Some("latest"),
                None,
            ),
            // `library/` applies to Docker Hub only.
            (
                "example.com/app",
                "example.com",
                "example.com",
                "app",
                Some("latest"),
                None,
            ),
        ];
        for &(input, registry, host, repository, tag, digest) in cases {
            let parsed = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(parsed.registry(), registry, "registry of {input}");
            assert_eq!(parsed.api_host(), host, "api host of {input}");
            assert_eq!(parsed.repository(), repository, "repository of {input}");
            assert_eq!(parsed.tag(), tag, "tag of {input}");
            assert_eq!(parsed.digest(), digest, "digest of {input}");
        }
    }

    #[test]
    fn parse_keeps_tag_and_digest() {
        let both = ImageRef::parse(&format!("example.com/app:v1@{DIGEST}")).unwrap();
        assert_eq!(both.tag(), Some("v1"));
        assert_eq!(both.digest(), Some(DIGEST));

        let digest_only = ImageRef::parse(&format!("example.com/app@{DIGEST}")).unwrap();
        assert_eq!(digest_only.tag(), None);
        assert_eq!(digest_only.digest(), Some(DIGEST));
        assert_eq!(digest_only.to_string(), format!("example.com/app@{DIGEST}"));
    }

    #[test]
    fn parse_rejects_invalid_references() {
        let cases = [
            "",
            "UPPER/case",
            ":tagonly",
            "app@sha256:abc",
            "app@md5:0123456789abcdef0123456789abcdef",
            "a b",
            "app:tag:more",
        ];
        for input in cases {
            let error = ImageRef::parse(input).expect_err(input);
            let message = error.to_string();
            assert!(message.contains(&format!("{input:?}")), "{message}");
            assert!(message.contains("expected [HOST[:PORT]/]NAME"), "{message}");
        }
    }

    #[test]
    fn display_is_normalised() {
        assert_eq!(
            ImageRef::parse("nginx").unwrap().to_string(),
            "docker.io/library/nginx:latest"
        );
        assert_eq!(
            ImageRef::parse("localhost:5000/a/b:c").unwrap().to_string(),
            "localhost:5000/a/b:c"
        );
    }

    #[test]
    fn image_ids_are_recognised() {
        assert!(looks_like_image_id(
            "sha256:4e7eacd3daa9c210d0835bf72bf6539cb1956fca82365da5c9b37e5273d084a1"
        ));
        assert!(looks_like_image_id("4e7eacd3daa9"));
        assert!(!looks_like_image_id("nginx"));
        assert!(!looks_like_image_id("4e7eacd3"));
        assert!(!looks_like_image_id("127.0.0.1:5000/app"));
    }
}
