//! The outbound policy: which hosts and addresses registry requests may reach. Every URL
//! is checked before a request goes to it, redirect targets and token realms included,
//! and every address a host name resolves to is checked before a connection is made.
//!
//! Two rules combine:
//!
//! - Link-local addresses (169.254.0.0/16 and fe80::/10, where most clouds serve instance
//!   metadata) and the other cloud metadata addresses are always refused, also when an
//!   IPv6 address embeds them. No allow-list entry reopens them.
//! - An allow-list, when given, admits nothing else. A host entry (`host` or `host:port`)
//!   admits URLs with that host, on any port or on that port, whatever the name resolves
//!   to. A host name that some host entry names is refused on the ports no entry gives.
//!   A network entry (CIDR) admits IP literals inside it. It also admits a host name that
//!   no host entry names, and then connections go only to the resolved addresses inside
//!   an allowed network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;
use url::{Host, Url};

/// Addresses of cloud metadata services outside the link-local ranges: Alibaba Cloud's
/// and the IPv6 one of AWS. The rest (AWS, GCP, Azure and others at 169.254.169.254)
/// are link-local.
const METADATA_ADDRESSES: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
];

/// The first 96 bits of the NAT64 well-known prefix 64:ff9b::/96 (RFC 6052). A NAT64
/// gateway connects to the IPv4 address in the last 32 bits.
const NAT64_PREFIX: [u16; 6] = [0x64, 0xff9b, 0, 0, 0, 0];

/// One entry of an allow-list, as written after `--registry-allow`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowEntry {
    /// `host` or `host:port` (`[fd00::1]:5000` for IPv6): URLs with that host, on any
    /// port or on that port. The port of a URL without one is its scheme's default.
    Host {
        host: Host<String>,
        port: Option<u16>,
    },
    /// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`), on any port.
    Network(IpNet),
}

impl AllowEntry {
    /// Returns whether this is a host entry for `host` and `port`.
    fn matches(&self, host: &Host<&str>, port: Option<u16>) -> bool {
        let AllowEntry::Host {
            host: listed,
            port: listed_port,
        } = self
        else {
            return false;
        };
        let same_host = match (listed, host) {
            (Host::Domain(listed), Host::Domain(name)) => listed == name,
            (Host::Ipv4(listed), Host::Ipv4(address)) => listed == address,
            (Host::Ipv6(listed), Host::Ipv6(address)) => listed == address,
            _ => false,
        };
        same_host && listed_port.is_none_or(|listed| Some(listed) == port)
    }

    /// Returns whether this is a host entry for the host name `name`, whatever its port.
    fn names(&self, name: &str) -> bool {
        matches!(self, AllowEntry::Host { host: Host::Domain(listed), .. } if listed == name)
    }

    /// Returns whether this is a network entry that contains `address`. An IPv4-mapped
    /// IPv6 address counts as its IPv4 address.
    fn contains(&self, address: IpAddr) -> bool {
        matches!(self, AllowEntry::Network(network) if network.contains(&address.to_canonical()))
    }

    fn is_network(&self) -> bool {
        matches!(self, AllowEntry::Network(_))
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AllowEntry::Host {
                host,
                port: Some(port),
            } => write!(f, "{host}:{port}"),
            AllowEntry::Host { host, port: None } => write!(f, "{host}"),
            AllowEntry::Network(network) => write!(f, "{network}"),
        }
    }
}

/// An allow-list entry that is neither `HOST[:PORT]` nor a CIDR. The message gives the
/// reason only, because clap's message around it already names the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct InvalidAllowEntry {
    pub entry: String,
    pub reason: String,
}

impl FromStr for AllowEntry {
    type Err = InvalidAllowEntry;

    /// Parses `HOST`, `HOST:PORT`, `[IPV6]`, `[IPV6]:PORT`, a bare IPv6 address, or a
    /// CIDR. Surrounding whitespace is ignored, so `a, b` in a variable works.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let entry = text.trim();
        let invalid = |reason: String| InvalidAllowEntry {
            entry: entry.to_owned(),
            reason,
        };
        if entry.is_empty() {
            return Err(invalid("the entry is empty".to_owned()));
        }
        if entry.contains("://") {
            return Err(invalid(
                "a URL is not an entry: give its HOST[:PORT] without the scheme".to_owned(),
            ));
        }

        if let Some((address, _)) = entry.split_once('/') {
            if address.parse::<IpAddr>().is_err() {
                return Err(invalid(
                    "only a CIDR contains a slash: give HOST[:PORT] without a path, or a \
                     network such as 10.0.0.0/8"
                        .to_owned(),
                ));
            }
            let network: IpNet = entry.parse().map_err(|_| {
                invalid(
                    "invalid CIDR: the prefix length must be 0 to 32 for IPv4 and 0 to 128 \
                     for IPv6"
                        .to_owned(),
                )
            })?;
            return Ok(AllowEntry::Network(network.trunc()));
        }

        if let Ok(address) = entry.parse::<Ipv6Addr>() {
            return Ok(AllowEntry::Host {
                host: Host::Ipv6(address),
                port: None,
            });
        }
        let (host, port) = split_port(entry).map_err(invalid)?;
        let host = Host::parse(host).map_err(|e| invalid(format!("invalid host {host:?}: {e}")))?;
        Ok(AllowEntry::Host { host, port })
    }
}

/// Splits `host[:port]` or `[ipv6][:port]` into the host, brackets kept, and the port.
fn split_port(entry: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if entry.starts_with('[') {
        let Some(end) = entry.find(']') else {
            return Err("missing ] after the IPv6 address".to_owned());
        };
        let (host, rest) = entry.split_at(end + 1);
        if rest.is_empty() {
            return Ok((host, None));
        }
        let Some(port) = rest.strip_prefix(':') else {
            return Err(format!(
                "unexpected {rest:?} after the IPv6 address: expected :PORT"
            ));
        };
        (host, port)
    } else {
        match entry.rsplit_once(':') {
            None => return Ok((entry, None)),
            Some((host, _)) if host.contains(':') => {
                return Err(
                    "an IPv6 address with a port needs brackets, as in [fd00::1]:5000".to_owned(),
                );
            }
            Some(pair) => pair,
        }
    };
    match port.parse::<u16>() {
        Ok(port) if port != 0 => Ok((host, Some(port))),
        _ => Err(format!(
            "invalid port {port:?}: expected a number from 1 to 65535"
        )),
    }
}

/// The hosts and addresses that outbound registry requests may reach: the fixed refusal
/// of link-local and metadata addresses, and an optional allow-list (see the module
/// documentation for how its entries combine).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// `None` admits every host and address the fixed refusals leave.
    allow_list: Option<Vec<AllowEntry>>,
}

impl OutboundPolicy {
    /// Creates a policy that admits only what `entries` name, and nothing when there are
    /// no entries. Registries, their token realms and redirect targets all need an entry.
    pub fn allowing(entries: impl IntoIterator<Item = AllowEntry>) -> Self {
        Self {
            allow_list: Some(entries.into_iter().collect()),
        }
    }

    /// Creates the policy of `--registry-allow`: an allow-list of `entries`, or no
    /// allow-list when there are none.
    pub fn from_allow_list(entries: Vec<AllowEntry>) -> Self {
        if entries.is_empty() {
            Self::default()
        } else {
            Self::allowing(entries)
        }
    }

    /// Returns the allow-list, or `None` when every address but the refused ones is allowed.
    pub fn allow_list(&self) -> Option<&[AllowEntry]> {
        self.allow_list.as_deref()
    }

    /// Checks a URL before a request is sent to it. A host name passes when a host entry
    /// admits it, or when only its resolved addresses can decide, which
    /// [`check_resolved`](Self::check_resolved) then does. The error gives the reason.
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), String> {
        let Some(host) = url.host() else {
            return Err(format!("{url} has no host"));
        };
        let address = ip_address(&host);
        if let Some(address) = address {
            check_address(address)?;
        }
        let Some(entries) = &self.allow_list else {
            return Ok(());
        };

        let port = url.port_or_known_default();
        if entries.iter().any(|entry| entry.matches(&host, port)) {
            return Ok(());
        }
        let admitted = match (&host, address) {
            (_, Some(address)) => entries.iter().any(|entry| entry.contains(address)),
            // A listed name keeps to the ports of its entries. An unlisted name may
            // still resolve to an allowed network.
            (Host::Domain(name), None) => {
                !entries.iter().any(|entry| entry.names(name))
                    && entries.iter().any(AllowEntry::is_network)
            }
            _ => false,
        };
        if admitted {
            return Ok(());
        }
        let target = match port {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        Err(not_allowed(&target, entries))
    }

    /// Checks an address that the host name `name` resolved to, before a connection is
    /// made to it. A host entry for `name` admits every address but the refused ones.
    /// Otherwise the address must lie in an allowed network.
    pub(crate) fn check_resolved(&self, name: &str, address: IpAddr) -> Result<(), String> {
        check_address(address)?;
        let Some(entries) = &self.allow_list else {
            return Ok(());
        };
        if entries
            .iter()
            .any(|entry| entry.names(name) || entry.contains(address))
        {
            return Ok(());
        }
        Err(not_allowed(&address.to_string(), entries))
    }
}

fn not_allowed(target: &str, entries: &[AllowEntry]) -> String {
    if entries.is_empty() {
        return format!("{target} is not allowed by the outbound policy: its allow-list is empty");
    }
    let listed: Vec<String> = entries.iter().map(ToString::to_string).collect();
    format!(
        "{target} is not allowed by the outbound policy, which allows only {}",
        listed.join(", ")
    )
}

fn ip_address(host: &Host<&str>) -> Option<IpAddr> {
    match host {
        Host::Ipv4(address) => Some(IpAddr::V4(*address)),
        Host::Ipv6(address) => Some(IpAddr::V6(*address)),
        Host::Domain(_) => None,
    }
}

/// Checks one address against the fixed refusals, whatever the allow-list contains. The
/// error gives the reason for a refusal.
pub(crate) fn check_address(address: IpAddr) -> Result<(), String> {
    let refused = |address: IpAddr| {
        let link_local = match address {
            IpAddr::V4(v4) => v4.is_link_local(),
            IpAddr::V6(v6) => v6.is_unicast_link_local(),
        };
        if link_local {
            Some("a link-local address")
        } else if METADATA_ADDRESSES.contains(&address) {
            Some("a cloud metadata address")
        } else {
            None
        }
    };

    if let Some(kind) = refused(address) {
        return Err(format!(
            "{address} is {kind}, which the outbound policy refuses"
        ));
    }
    if let IpAddr::V6(v6) = address
        && let Some(v4) = embedded_ipv4(v6)
        && let Some(kind) = refused(IpAddr::V4(v4))
    {
        return Err(format!(
            "{address} embeds {v4}, {kind}, which the outbound policy refuses"
        ));
    }
    Ok(())
}

/// Returns the IPv4 address an IPv6 address carries, where a dual-stack socket, an old
/// stack or a NAT64 gateway may connect to it: IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`, deprecated by RFC 4291) or NAT64 (`64:ff9b::a.b.c.d`).
fn embedded_ipv4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = address.to_ipv4() {
        return Some(v4);
    }
    let segments = address.segments();
    (segments[..6] == NAT64_PREFIX)
        .then(|| Ipv4Addr::from((u32::from(segments[6]) << 16) | u32::from(segments[7])))
}

/// Failure to resolve a host name to any address the policy admits.
#[derive(Debug, thiserror::Error)]
#[error("{host} resolves only to addresses the outbound policy refuses: {reason}")]
pub(crate) struct RefusedAddresses {
    pub host: String,
    /// The reason the first refused address was refused.
    pub reason: String,
}

/// A DNS resolver that keeps only the addresses the policy admits for the name, so that
/// a DNS answer cannot lead a request past the policy. A name with no admitted address
/// fails to resolve with [`RefusedAddresses`].
pub(crate) struct CheckedResolver {
    policy: Arc<OutboundPolicy>,
}

impl CheckedResolver {
    pub(crate) fn new(policy: OutboundPolicy) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }
}

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let mut first_refusal = None;
            let admitted: Vec<SocketAddr> = resolved
                .filter(|address| match policy.check_resolved(&host, address.ip()) {
                    Ok(()) => true,
                    Err(reason) => {
                        first_refusal.get_or_insert(reason);
                        false
                    }
                })
                .collect();
            if admitted.is_empty()
                && let Some(reason) = first_refusal
            {
                return Err(Box::new(RefusedAddresses { host, reason }) as _);
            }
            Ok(Box::new(admitted.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests;
