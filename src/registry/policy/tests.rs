use std::net::IpAddr;

use reqwest::dns::Resolve;

use super::*;

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

fn address(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn entries(texts: &[&str]) -> Vec<AllowEntry> {
    texts.iter().map(|text| text.parse().unwrap()).collect()
}

#[test]
fn default_refusal_covers_link_local_and_metadata() {
    let refused = [
        // 169.254.0.0/16, at both ends and at the AWS/GCP/Azure metadata address.
        ("169.254.0.0", "link-local"),
        ("169.254.169.254", "link-local"),
        ("169.254.255.255", "link-local"),
        // fe80::/10, at both ends.
        ("fe80::", "link-local"),
        ("fe80::1", "link-local"),
        ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "link-local"),
        ("100.100.100.200", "metadata"),
        ("fd00:ec2::254", "metadata"),
        // IPv6 forms that carry a refused IPv4 address.
        ("::ffff:169.254.169.254", "embeds 169.254.169.254"),
        ("::ffff:a9fe:1", "embeds 169.254.0.1"),
        ("::ffff:100.100.100.200", "embeds 100.100.100.200"),
        ("::169.254.169.254", "embeds 169.254.169.254"),
        ("64:ff9b::169.254.169.254", "embeds 169.254.169.254"),
        ("64:ff9b::100.100.100.200", "embeds 100.100.100.200"),
    ];
    for (text, reason) in refused {
        let error = check_address(address(text)).unwrap_err();
        assert!(error.contains(reason), "{text}: {error}");
        assert!(error.contains("refuses"), "{text}: {error}");
    }
}

#[test]
fn default_refusal_spares_neighbouring_addresses() {
    let allowed = [
        "169.253.255.255",
        "169.255.0.0",
        "100.100.100.199",
        "100.100.100.201",
        "fec0::1",
        "fe7f:ffff::1",
        "fd00:ec2::253",
        "127.0.0.1",
        "::1",
        "10.0.0.1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "64:ff9b::10.0.0.1",
        "64:ff9c::169.254.169.254",
        "2001:db8::1",
    ];
    for text in allowed {
        assert_eq!(check_address(address(text)), Ok(()), "{text}");
    }
}

#[test]
fn refused_literals_rejected_in_urls() {
    let refused = [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.0.1:5000/v2/",
        "http://[fe80::1]/v2/",
        "http://[::ffff:169.254.169.254]/",
        "http://[64:ff9b::a9fe:a9fe]/",
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
fn allow_list_never_reopens_refused_addresses() {
    let policy = OutboundPolicy::allowing(entries(&[
        "169.254.169.254",
        "0.0.0.0/0",
        "::/0",
        "metadata.internal",
    ]));

    assert!(policy.check_url(&url("http://169.254.169.254/")).is_err());
    assert!(policy.check_url(&url("http://[fe80::1]/")).is_err());
    assert!(policy.check_url(&url("http://100.100.100.200/")).is_err());
    let resolved = policy.check_resolved("metadata.internal", address("169.254.169.254"));
    assert!(resolved.unwrap_err().contains("link-local"));
    let resolved = policy.check_resolved("elsewhere.internal", address("fd00:ec2::254"));
    assert!(resolved.unwrap_err().contains("metadata"));
}

#[test]
fn entries_parse_and_normalise() {
    let cases = [
        ("registry.example.com", "registry.example.com"),
        ("Registry.Example.COM:5000", "registry.example.com:5000"),
        ("127.0.0.1", "127.0.0.1"),
        ("127.0.0.1:5000", "127.0.0.1:5000"),
        ("[::1]", "[::1]"),
        ("[::1]:5000", "[::1]:5000"),
        ("::1", "[::1]"),
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("10.1.2.3/8", "10.0.0.0/8"),
        (" 127.0.0.1/32 ", "127.0.0.1/32"),
        ("fd00::/8", "fd00::/8"),
        ("::ffff:0:0/96", "::ffff:0.0.0.0/96"),
    ];
    for (text, expected) in cases {
        let entry: AllowEntry = text
            .parse()
            .unwrap_or_else(|e| panic!("{text:?} was rejected: {e}"));
        assert_eq!(entry.to_string(), expected, "{text:?}");
    }
}

#[test]
fn invalid_entries_rejected_with_reason() {
    let cases = [
        ("", "empty"),
        ("  ", "empty"),
        ("https://registry.example.com", "not an entry"),
        ("registry.example.com/team", "without a path"),
        ("10.0.0.0/33", "prefix length"),
        ("fd00::/129", "prefix length"),
        ("10.0.0.0/x", "prefix length"),
        ("registry.example.com:0", "invalid port"),
        ("registry.example.com:65536", "invalid port"),
        ("registry.example.com:http", "invalid port"),
        ("registry.example.com:", "invalid port"),
        ("[fd00::1]5000", "expected :PORT"),
        ("[fd00::1", "missing ]"),
        ("fd00::1::5000", "needs brackets"),
        ("user@registry.example.com", "invalid host"),
        ("registry example", "invalid host"),
        ("[registry]", "invalid host"),
    ];
    for (text, reason) in cases {
        let error = text.parse::<AllowEntry>().unwrap_err();
        assert_eq!(error.entry, text.trim(), "{text:?}");
        assert!(error.reason.contains(reason), "{text:?}: {error}");
    }
}

#[test]
fn host_entries_match_host_or_host_and_port() {
    let policy = OutboundPolicy::allowing(entries(&[
        "registry.example.com",
        "127.0.0.1:5000",
        "[::1]:5000",
        "secure.example.com:443",
    ]));
    let cases = [
        ("https://registry.example.com/v2/", true),
        ("https://REGISTRY.example.com:8443/v2/", true),
        ("http://127.0.0.1:5000/v2/", true),
        ("http://127.0.0.1:5001/v2/", false),
        ("http://[::1]:5000/v2/", true),
        ("http://[::1]:5001/v2/", false),
        ("https://secure.example.com/v2/", true),
        ("http://secure.example.com/v2/", false),
        ("https://cdn.example.com/blob", false),
        ("http://127.0.0.2:5000/v2/", false),
    ];
    for (text, expected) in cases {
        let result = policy.check_url(&url(text));
        assert_eq!(result.is_ok(), expected, "{text}: {result:?}");
    }

    let error = policy
        .check_url(&url("http://127.0.0.1:5001/"))
        .unwrap_err();
    assert!(error.contains("127.0.0.1:5001 is not allowed"), "{error}");
    assert!(error.contains("allows only registry.example.com, 127.0.0.1:5000"));
}

#[test]
fn network_entries_match_ip_literals() {
    let policy = OutboundPolicy::allowing(entries(&["127.0.0.1/32", "fd00::/8"]));
    let cases = [
        ("http://127.0.0.1:5000/v2/", true),
        ("http://127.0.0.1:1/v2/", true),
        ("http://127.0.0.2:5000/v2/", false),
        ("http://[::ffff:127.0.0.1]:5000/v2/", true),
        ("http://[::1]:5000/v2/", false),
        ("https://[fd12::1]/v2/", true),
        ("https://[2001:db8::1]/v2/", false),
        ("https://10.0.0.1/v2/", false),
    ];
    for (text, expected) in cases {
        let result = policy.check_url(&url(text));
        assert_eq!(result.is_ok(), expected, "{text}: {result:?}");
    }
}

#[test]
fn network_entries_decide_resolved_addresses_of_unlisted_names() {
    let policy = OutboundPolicy::allowing(entries(&[
        "registry.example.com:5000",
        "10.0.0.0/8",
        "fd00::/8",
    ]));

    // The URL check leaves an unlisted name to its resolved addresses.
    assert_eq!(
        policy.check_url(&url("https://other.example.com/v2/")),
        Ok(())
    );
    assert_eq!(
        policy.check_resolved("other.example.com", address("10.1.2.3")),
        Ok(())
    );
    assert_eq!(
        policy.check_resolved("other.example.com", address("fd00::1")),
        Ok(())
    );
    let error = policy
        .check_resolved("other.example.com", address("192.168.1.1"))
        .unwrap_err();
    assert!(error.contains("192.168.1.1 is not allowed"), "{error}");

    // A listed name keeps to the ports of its entries, and resolves anywhere there.
    assert_eq!(
        policy.check_url(&url("https://registry.example.com:5000/v2/")),
        Ok(())
    );
    assert!(
        policy
            .check_url(&url("https://registry.example.com/v2/"))
            .is_err()
    );
    assert_eq!(
        policy.check_resolved("registry.example.com", address("192.168.1.1")),
        Ok(())
    );
}

#[test]
fn host_entries_alone_reject_unlisted_names_at_url() {
    let policy = OutboundPolicy::allowing(entries(&["registry.example.com"]));

    assert!(
        policy
            .check_url(&url("https://cdn.example.com/blob"))
            .is_err()
    );
    assert!(
        policy
            .check_resolved("cdn.example.com", address("10.1.2.3"))
            .is_err()
    );
}

#[test]
fn empty_allow_list_admits_nothing() {
    let policy = OutboundPolicy::allowing([]);

    let error = policy
        .check_url(&url("http://127.0.0.1:5000/"))
        .unwrap_err();
    assert!(error.contains("allow-list is empty"), "{error}");
    assert_eq!(
        OutboundPolicy::from_allow_list(Vec::new()),
        OutboundPolicy::default()
    );
    assert_eq!(OutboundPolicy::default().allow_list(), None);
}

/// Resolves `localhost`, which /etc/hosts maps to 127.0.0.1, so no DNS query is sent.
async fn resolve_localhost(policy: OutboundPolicy) -> Result<Vec<IpAddr>, String> {
    let name = "localhost".parse().unwrap();
    match CheckedResolver::new(policy).resolve(name).await {
        Ok(addresses) => Ok(addresses.map(|a| a.ip()).collect()),
        Err(error) => Err(error.to_string()),
    }
}

#[tokio::test]
async fn resolver_keeps_only_allowed_addresses() {
    let allowed = resolve_localhost(OutboundPolicy::allowing(entries(&["127.0.0.0/8"])))
        .await
        .unwrap();
    assert!(allowed.contains(&address("127.0.0.1")), "{allowed:?}");
    assert!(allowed.iter().all(|a| a.is_ipv4()), "{allowed:?}");

    let listed = resolve_localhost(OutboundPolicy::allowing(entries(&["localhost:5000"])))
        .await
        .unwrap();
    assert!(listed.contains(&address("127.0.0.1")), "{listed:?}");

    let error = resolve_localhost(OutboundPolicy::allowing(entries(&["127.0.0.2/32"])))
        .await
        .unwrap_err();
    assert!(
        error.contains("localhost resolves only to addresses the outbound policy refuses"),
        "{error}"
    );
}
