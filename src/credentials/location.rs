//! Registry locations: a registry host with an optional repository path prefix, parsed
//! from a URL such as `registry.example.com:5000/team`, and the choice of the stored entry
//! that applies to a repository.

use std::fmt;

use crate::reference::canonical_registry;

/// A registry host (as in normalised references: `docker.io` for Docker Hub, `host:port`
/// otherwise) and a repository path prefix, empty for the whole host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RegistryLocation {
    host: String,
    path_prefix: String,
}

/// A parsed registry URL: the location and whether it was written with `http://`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParsedRegistryUrl {
    pub location: RegistryLocation,
    pub plain_http: bool,
}

/// An invalid registry URL and the reason. The message is safe to return to an API client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid registry URL {url:?}: {reason}")]
pub struct LocationError {
    pub url: String,
    pub reason: &'static str,
}

/// The key under which `docker login` stores Docker Hub credentials; it names the whole
/// of Docker Hub, not a `v1` namespace.
const DOCKER_HUB_SERVER_ADDRESS: &str = "index.docker.io/v1";

impl RegistryLocation {
    /// Parses `[https://|http://]HOST[:PORT][/PATH/PREFIX]`. The host is lowercased and
    /// Docker Hub's aliases become `docker.io`. The prefix must be a repository path: lowercase
    /// components of letters and digits joined by `.`, `_`, `__` or dashes.
    pub fn parse(url: &str) -> Result<ParsedRegistryUrl, LocationError> {
        let invalid = |reason| LocationError {
            url: url.to_owned(),
            reason,
        };

        let trimmed = url.trim();
        let (rest, plain_http) = match trimmed.split_once("://") {
            None => (trimmed, false),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (rest, false),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (rest, true),
            Some(_) => return Err(invalid("the scheme must be https:// or http://")),
        };
        if rest.contains(['?', '#', '@', ' ', '\\']) {
            return Err(invalid(
                "expected HOST[:PORT][/PATH] without credentials, query or fragment",
            ));
        }

        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let authority = authority.to_ascii_lowercase();
        check_authority(&authority).map_err(invalid)?;

        let path = path.trim_end_matches('/');
        let host = canonical_registry(&authority).to_owned();
        let is_hub_address = format!("{authority}/{path}") == DOCKER_HUB_SERVER_ADDRESS;
        let path_prefix = if is_hub_address {
            String::new()
        } else {
            check_path_prefix(path).map_err(invalid)?;
            path.to_owned()
        };

        Ok(ParsedRegistryUrl {
            location: Self { host, path_prefix },
            plain_http,
        })
    }

    /// Returns the host as in normalised references, such as `docker.io` or `host:5000`.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Returns the repository path prefix, empty when the location covers the whole host.
    pub fn path_prefix(&self) -> &str {
        &self.path_prefix
    }

    /// Tells whether this location covers `repository` on `registry`. The registry must
    /// be the same host (Docker Hub's aliases count as one), and the prefix must end at a
    /// path component boundary: `team` covers `team` and `team/app`, not `teams/app`.
    pub fn covers(&self, registry: &str, repository: &str) -> bool {
        if !canonical_registry(&registry.to_ascii_lowercase()).eq(&self.host) {
            return false;
        }
        if self.path_prefix.is_empty() {
            return true;
        }
        match repository.strip_prefix(self.path_prefix.as_str()) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// Writes `host/prefix`, or `host` alone for a location covering the whole host.
impl fmt::Display for RegistryLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path_prefix.is_empty() {
            f.write_str(&self.host)
        } else {
            write!(f, "{}/{}", self.host, self.path_prefix)
        }
    }
}

/// Picks the entry for `repository` on `registry`: among the entries whose location covers
/// it, the one with the longest path prefix. Entries for other hosts never match.
pub fn best_match<'a, T>(
    entries: impl IntoIterator<Item = (&'a RegistryLocation, T)>,
    registry: &str,
    repository: &str,
) -> Option<T> {
    entries
        .into_iter()
        .filter(|(location, _)| location.covers(registry, repository))
        .max_by_key(|(location, _)| location.path_prefix.len())
        .map(|(_, entry)| entry)
}

/// Checks `HOST[:PORT]`: a DNS name, an IPv4 address or a bracketed IPv6 address, and a
/// port from 1 to 65535.
fn check_authority(authority: &str) -> Result<(), &'static str> {
    if authority.is_empty() {
        return Err("the host is missing");
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (address, after) = bracketed
            .split_once(']')
            .ok_or("an IPv6 address needs a closing bracket")?;
        address
            .parse::<std::net::Ipv6Addr>()
            .map_err(|_| "invalid IPv6 address")?;
        match after {
            "" => (address, None),
            _ => (
                address,
                Some(
                    after
                        .strip_prefix(':')
                        .ok_or("expected :PORT after the IPv6 address")?,
                ),
            ),
        }
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };

    if let Some(port) = port {
        let valid_port = port.bytes().all(|b| b.is_ascii_digit())
            && port.parse::<u16>().is_ok_and(|number| number > 0);
        if !valid_port {
            return Err("the port must be a number from 1 to 65535");
        }
    }
    if authority.starts_with('[') {
        return Ok(());
    }

    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if host.len() > 253 || !host.split('.').all(valid_label) {
        return Err("the host must be a DNS name or an IP address");
    }
    Ok(())
}

/// Checks a repository path prefix, empty or components as the distribution reference
/// grammar defines them.
fn check_path_prefix(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Ok(());
    }
    if path.len() > 255 {
        return Err("the path is longer than 255 characters");
    }
    if path.split('/').all(is_path_component) {
        Ok(())
    } else {
        Err(
            "the path must be a repository prefix: lowercase letters and digits, \
             separated by '.', '_', '__' or dashes, in components joined by '/'",
        )
    }
}

/// Tells whether `component` matches `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn is_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alphanumeric = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alphanumeric(bytes[0]) || !alphanumeric(bytes[bytes.len() - 1]) {
        return false;
    }

    let mut index = 0;
    while index < bytes.len() {
        if alphanumeric(bytes[index]) {
            index += 1;
            continue;
        }
        let start = index;
        while index < bytes.len() && !alphanumeric(bytes[index]) {
            index += 1;
        }
        let separator = &component[start..index];
        let valid = matches!(separator, "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
        if !valid {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(url: &str) -> RegistryLocation {
        RegistryLocation::parse(url).unwrap().location
    }

    #[test]
    fn parse_accepts_host_port_and_prefix() {
        // (input, host, prefix, plain HTTP)
        let cases = [
            ("registry.example.com", "registry.example.com", "", false),
            (
                "Registry.Example.com:5000",
                "registry.example.com:5000",
                "",
                false,
            ),
            (
                "registry.example.com:5000/team",
                "registry.example.com:5000",
                "team",
                false,
            ),
            (
                "https://registry.example.com/team/app/",
                "registry.example.com",
                "team/app",
                false,
            ),
            ("HTTP://127.0.0.1:5000", "127.0.0.1:5000", "", true),
            ("[::1]:5000/a.b_c__d--e", "[::1]:5000", "a.b_c__d--e", false),
            ("docker.io", "docker.io", "", false),
            ("index.docker.io/library", "docker.io", "library", false),
            ("registry-1.docker.io", "docker.io", "", false),
            ("https://index.docker.io/v1/", "docker.io", "", false),
            ("localhost:5000", "localhost:5000", "", false),
        ];
        for (input, host, prefix, plain_http) in cases {
            let parsed = RegistryLocation::parse(input).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(parsed.location.host(), host, "{input}");
            assert_eq!(parsed.location.path_prefix(), prefix, "{input}");
            assert_eq!(parsed.plain_http, plain_http, "{input}");
        }
    }

    #[test]
    fn parse_rejects_other_forms() {
        let cases = [
            "",
            "ftp://registry.example.com",
            "https://",
            "user:pass@registry.example.com",
            "registry.example.com?x=1",
            "registry.example.com#top",
            "registry.example.com:0",
            "registry.example.com:99999",
            "registry.example.com:port",
            "registry.example.com/Team",
            "registry.example.com/team//app",
            "registry.example.com/-team",
            "registry.example.com/te..am",
            "reg_istry.example.com",
            "-registry.example.com",
            "[::1",
            "[not-ipv6]:5000",
            "registry example.com",
        ];
        for input in cases {
            assert!(
                RegistryLocation::parse(input).is_err(),
                "{input:?} was accepted"
            );
        }
    }

    #[test]
    fn error_names_the_url() {
        let error = RegistryLocation::parse("ftp://x").unwrap_err();

        assert!(error.to_string().contains("\"ftp://x\""), "{error}");
    }

    #[test]
    fn covers_on_component_boundaries() {
        let team = location("registry.example.com/team");
        assert!(team.covers("registry.example.com", "team"));
        assert!(team.covers("registry.example.com", "team/app"));
        assert!(team.covers("Registry.Example.com", "team/app"));
        assert!(!team.covers("registry.example.com", "teams/app"));
        assert!(!team.covers("registry.example.com", "other/team"));
        assert!(!team.covers("registry.example.com:5000", "team/app"));
        assert!(!team.covers("other.example.com", "team/app"));
    }

    #[test]
    fn docker_hub_aliases_are_one_host() {
        let hub = location("index.docker.io/library");
        for registry in ["docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert!(hub.covers(registry, "library/nginx"), "{registry}");
        }
        assert!(!hub.covers("ghcr.io", "library/nginx"));
    }

    #[test]
    fn best_match_takes_longest_prefix() {
        let entries = [
            (location("registry.example.com"), "host"),
            (location("registry.example.com/team"), "team"),
            (location("registry.example.com/team/app"), "app"),
            (location("other.example.com/team/app/x"), "other host"),
        ];
        let pick = |registry: &str, repository: &str| {
            best_match(
                entries.iter().map(|(l, name)| (l, *name)),
                registry,
                repository,
            )
        };

        assert_eq!(pick("registry.example.com", "team/app/x"), Some("app"));
        assert_eq!(pick("registry.example.com", "team/api"), Some("team"));
        assert_eq!(pick("registry.example.com", "teams/app"), Some("host"));
        assert_eq!(pick("registry.example.com", "solo"), Some("host"));
        assert_eq!(pick("registry.example.com:5000", "team/app"), None);
        assert_eq!(pick("third.example.com", "team/app/x"), None);
    }

    #[test]
    fn display_joins_host_and_prefix() {
        assert_eq!(
            location("https://r.example.com:5000/team/").to_string(),
            "r.example.com:5000/team"
        );
        assert_eq!(location("index.docker.io").to_string(), "docker.io");
    }
}
