//! The outbound policy: which hosts and addresses registry requests may reach. Every URL
//! is checked before a request goes to it, redirect targets included, and every address
//! a host name resolves to is checked before a connection is made.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use url::{Host, Url};

/// Addresses of cloud metadata services outside the link-local ranges: Alibaba Cloud's
/// and the IPv6 one of AWS. The rest (AWS, GCP, Azure and others at 169.254.169.254)
/// are link-local.
const METADATA_ADDRESSES: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(100, 100, 100, 200)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
];

/// The hosts and addresses that outbound registry requests may reach.
///
/// Link-local addresses (169.254.0.0/16 and fe80::/10, where most clouds serve instance
/// metadata) and the other metadata addresses are always refused. An allow-list narrows
/// the policy further to the hosts it names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// `host` or `host:port` entries; `None` allows every host that is not refused.
    allowed_hosts: Option<Vec<String>>,
}

impl OutboundPolicy {
    /// A policy that reaches only `hosts`, each written as in an image reference:
    /// `host` for any port, or `host:port` (`[::1]:5000` for IPv6). Registries, their
    /// token realms and redirect targets all need an entry.
    pub fn allowing(hosts: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            allowed_hosts: Some(hosts.into_iter().map(Into::into).collect()),
        }
    }

    /// Checks a URL before a request is sent to it. The error gives the reason for a refusal.
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), String> {
        let host = match url.host() {
            Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => None,
            None => return Err(format!("{url} has no host")),
        };
        if let Some(ip) = host {
            check_address(ip)?;
        }

        let Some(allowed) = &self.allowed_hosts else {
            return Ok(());
        };
        let host = url.host_str().unwrap_or_default();
        let with_port = url
            .port_or_known_default()
            .map(|port| format!("{host}:{port}"));
        let listed = allowed
            .iter()
            .any(|entry| entry == host || Some(entry) == with_port.as_ref());
        if listed {
            Ok(())
        } else {
            Err(format!(
                "{} is not allowed by the outbound policy, which allows only {}",
                with_port.as_deref().unwrap_or(host),
                allowed.join(", ")
            ))
        }
    }
}

/// Checks one address a request would connect to. The error gives the reason for a refusal.
pub(crate) fn check_address(address: IpAddr) -> Result<(), String> {
    let address = match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    };
    let link_local = match address {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.is_unicast_link_local(),
    };
    if link_local {
        return Err(format!(
            "{address} is a link-local address, which the outbound policy refuses"
        ));
    }
    if METADATA_ADDRESSES.contains(&address) {
        return Err(format!(
            "{address} is a cloud metadata address, which the outbound policy refuses"
        ));
    }
    Ok(())
}

/// A DNS resolver that drops the addresses [`check_address`] refuses, so that a host
/// name cannot lead a request to them. A name with no other address fails to resolve.
pub(crate) struct CheckedResolver;

impl reqwest::dns::Resolve for CheckedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|address| check_address(address.ip()).is_ok())
                .collect();
            if allowed.is_empty() && !resolved.is_empty() {
                let reason = check_address(resolved[0].ip()).unwrap_err();
                return Err(format!("{host} resolves only to refused addresses: {reason}").into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn link_local_and_metadata_refused() {
        let refused = [
            "http://169.254.169.254/latest/meta-data/",
            "http://169.254.0.1:5000/v2/",
            "http://[fe80::1]/v2/",
            "http://[::ffff:169.254.169.254]/",
            "http://100.100.100.200/",
            "http://[fd00:ec2::254]/",
        ];
        for text in refused {
            let error = OutboundPolicy::default().check_url(&url(text)).unwrap_err();
            assert!(error.contains("refuses"), "{text}: {error}");
        }
    }

    #[test]
    fn ordinary_addresses_allowed_by_default() {
        let allowed = [
            "https://registry-1.docker.io/v2/",
            "http://127.0.0.1:5000/v2/",
            "http://[::1]:5000/v2/",
            "https://10.0.0.1/v2/",
            "https://100.100.100.201/v2/",
        ];
        for text in allowed {
            assert_eq!(
                OutboundPolicy::default().check_url(&url(text)),
                Ok(()),
                "{text}"
            );
        }
    }

    #[test]
    fn allow_list_matches_host_or_host_and_port() {
        let policy = OutboundPolicy::allowing(["registry.example.com", "127.0.0.1:5000"]);
        let cases = [
            ("https://registry.example.com/v2/", true),
            ("https://registry.example.com:8443/v2/", true),
            ("http://127.0.0.1:5000/v2/", true),
            ("http://127.0.0.1:5001/v2/", false),
            ("https://cdn.example.com/blob", false),
        ];
        for (text, expected) in cases {
            let result = policy.check_url(&url(text));
            assert_eq!(result.is_ok(), expected, "{text}: {result:?}");
        }
        let error = policy
            .check_url(&url("http://127.0.0.1:5001/"))
            .unwrap_err();
        assert!(error.contains("127.0.0.1:5001 is not allowed"), "{error}");
    }

    #[test]
    fn allow_list_never_reopens_link_local() {
        let policy = OutboundPolicy::allowing(["169.254.169.254"]);
        assert!(policy.check_url(&url("http://169.254.169.254/")).is_err());
    }
}
