use super::*;

fn digest(n: u8) -> String {
    format!("sha256:{:064x}", n)
}

fn amd64() -> Platform {
    Platform {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
    }
}

fn platform(architecture: &str, variant: Option<&str>) -> Platform {
    Platform {
        os: "linux".into(),
        architecture: architecture.into(),
        variant: variant.map(str::to_owned),
    }
}

fn image(repo_tags: &[&str], repo_digests: &[String]) -> ImageFacts {
    ImageFacts {
        id: format!("sha256:{}", "ab".repeat(32)),
        repo_tags: repo_tags.iter().map(|s| s.to_string()).collect(),
        repo_digests: repo_digests.to_vec(),
        platform: amd64(),
    }
}

fn index(entries: &[(&str, &str, Option<&str>, String)]) -> Manifest {
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .map(|(os, arch, variant, digest)| {
            let mut platform = serde_json::json!({"os": os, "architecture": arch});
            if let Some(v) = variant {
                platform["variant"] = serde_json::json!(v);
            }
            serde_json::json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": 100,
                "platform": platform,
            })
        })
        .collect();
    let json = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    });
    Manifest::Index(serde_json::from_value(json).unwrap())
}

fn target(reference: &str, local: &[String]) -> Target {
    Target {
        reference: ImageRef::parse(reference).unwrap(),
        local_digests: local.to_vec(),
    }
}

fn remote(digest: String, media_type: Option<&str>) -> RemoteDigest {
    RemoteDigest {
        digest,
        media_type: media_type.map(str::to_owned),
    }
}

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

fn decided(comparison: Comparison) -> Verdict {
    match comparison {
        Comparison::Decided(verdict) => verdict,
        Comparison::Fetch(digests) => panic!("expected a verdict, got a fetch of {digests:?}"),
    }
}

#[test]
fn plan_skips_without_registry() {
    let host = "registry.example.com";
    let d1 = digest(1);
    // (Config.Image, RepoTags, RepoDigests, expected reason fragment)
    let cases: Vec<(String, Vec<&str>, Vec<String>, &str)> = vec![
        (
            format!("{host}/app@{d1}"),
            vec![],
            vec![format!("{host}/app@{d1}")],
            "pinned by digest",
        ),
        (
            format!("{host}/app:v1"),
            vec![],
            vec![],
            "built locally or never pushed",
        ),
        (
            format!("{host}/app:v1"),
            vec![],
            vec![format!("{host}/other@{d1}")],
            "no registry digest for registry.example.com/app",
        ),
        (String::new(), vec![], vec![], "has no tag"),
        (
            "sha256:abababababab".to_owned(),
            vec![],
            vec![format!("{host}/app@{d1}")],
            "has no tag",
        ),
    ];
    for (config_image, tags, digests, reason) in cases {
        let facts = image(&tags, &digests);
        match plan(&config_image, &facts) {
            Plan::Decided(verdict) => {
                assert_eq!(verdict.status, Status::Skipped, "{config_image}");
                assert!(
                    verdict.reason.contains(reason),
                    "{config_image}: {}",
                    verdict.reason
                );
            }
            other => panic!("{config_image}: expected skipped, got {other:?}"),
        }
    }
}

#[test]
fn plan_invalid_reference_is_error() {
    let facts = image(&[], &[]);
    let Plan::Decided(verdict) = plan("Not/Valid:", &facts) else {
        panic!("expected a verdict");
    };
    assert_eq!(verdict.status, Status::Error);
    assert!(
        verdict.reason.contains("\"Not/Valid:\""),
        "{}",
        verdict.reason
    );
}

#[test]
fn plan_keeps_only_digests_of_checked_repository() {
    let (d1, d2, d3) = (digest(1), digest(2), digest(3));
    let facts = image(
        &["example.com/app:v1"],
        &[
            format!("example.com/app@{d1}"),
            format!("example.com/mirror/app@{d2}"),
            format!("example.com/app@{d3}"),
        ],
    );
    let Plan::Check(targets) = plan("example.com/app:v1", &facts) else {
        panic!("expected targets");
    };
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].local_digests, vec![d1, d3]);
}

#[test]
fn plan_matches_docker_hub_familiar_names() {
    let d1 = digest(1);
    let facts = image(&["nginx:latest"], &[format!("nginx@{d1}")]);
    let Plan::Check(targets) = plan("nginx", &facts) else {
        panic!("expected targets");
    };
    assert_eq!(
        targets[0].reference.to_string(),
        "docker.io/library/nginx:latest"
    );
    assert_eq!(targets[0].local_digests, vec![d1]);
}

#[test]
fn plan_adds_pinned_digest_for_tag_and_digest() {
    let d1 = digest(1);
    let facts = image(&[], &[]);
    let Plan::Check(targets) = plan(&format!("example.com/app:v1@{d1}"), &facts) else {
        panic!("expected targets");
    };
    assert_eq!(targets[0].reference.tag(), Some("v1"));
    assert_eq!(targets[0].local_digests, vec![d1]);
}

#[test]
fn plan_uses_repo_tags_for_image_id() {
    let d1 = digest(1);
    let facts = image(
        &["example.com/app:v1", "example.com/app:stable"],
        &[format!("example.com/app@{d1}")],
    );
    for config_image in ["", "abababababab", "sha256:abababababababab"] {
        let Plan::Check(targets) = plan(config_image, &facts) else {
            panic!("{config_image:?}: expected targets");
        };
        let tags: Vec<_> = targets.iter().map(|t| t.reference.tag().unwrap()).collect();
        assert_eq!(tags, vec!["v1", "stable"], "{config_image:?}");
    }
}

#[test]
fn compare_direct_digests() {
    let (d1, d2, d3) = (digest(1), digest(2), digest(3));
    let t = target("example.com/app:v1", &[d1.clone(), d2.clone()]);
    let none = Manifests::new();
    // (remote digest, media type, expected)
    let cases = [
        (d2.clone(), Some(OCI_MANIFEST), Status::Updated),
        (d1.clone(), Some(DOCKER_MANIFEST), Status::Updated),
        (d1.clone(), None, Status::Updated),
        (d3.clone(), Some(OCI_MANIFEST), Status::Outdated),
        (d3.clone(), Some(DOCKER_MANIFEST), Status::Outdated),
    ];
    for (remote_digest, media_type, expected) in cases {
        let verdict = decided(compare(
            &t,
            &amd64(),
            &remote(remote_digest, media_type),
            &none,
        ));
        assert_eq!(
            verdict.status, expected,
            "{media_type:?}: {}",
            verdict.reason
        );
    }
}

#[test]
fn compare_fetches_unknown_media_type() {
    let t = target("example.com/app:v1", &[digest(1)]);
    let comparison = compare(&t, &amd64(), &remote(digest(9), None), &Manifests::new());
    assert_eq!(comparison, Comparison::Fetch(vec![digest(9)]));
}

#[test]
fn compare_index_by_own_platform() {
    let (old_list, new_list) = (digest(10), digest(11));
    let (amd_old, amd_new, arm_old, arm_new) = (digest(1), digest(2), digest(3), digest(4));
    let old_index = index(&[
        ("linux", "amd64", None, amd_old.clone()),
        ("linux", "arm64", Some("v8"), arm_old.clone()),
    ]);
    let only_arm_changed = index(&[
        ("linux", "amd64", None, amd_old.clone()),
        ("linux", "arm64", Some("v8"), arm_new.clone()),
    ]);
    let amd_changed = index(&[
        ("linux", "amd64", None, amd_new.clone()),
        ("linux", "arm64", Some("v8"), arm_old.clone()),
    ]);
    let arm64 = platform("arm64", None);
    // (media type, remote index, platform, local digests, expected)
    let cases = [
        (
            OCI_INDEX,
            only_arm_changed.clone(),
            amd64(),
            vec![old_list.clone()],
            Status::Updated,
        ),
        (
            DOCKER_LIST,
            only_arm_changed.clone(),
            amd64(),
            vec![old_list.clone()],
            Status::Updated,
        ),
        (
            OCI_INDEX,
            amd_changed.clone(),
            amd64(),
            vec![old_list.clone()],
            Status::Outdated,
        ),
        (
            DOCKER_LIST,
            amd_changed.clone(),
            amd64(),
            vec![old_list.clone()],
            Status::Outdated,
        ),
        // The image's own platform decides, not the host's.
        (
            OCI_INDEX,
            amd_changed.clone(),
            arm64.clone(),
            vec![old_list.clone()],
            Status::Updated,
        ),
        (
            OCI_INDEX,
            only_arm_changed.clone(),
            arm64.clone(),
            vec![old_list.clone()],
            Status::Outdated,
        ),
        // Podman records the index and the platform digest.
        (
            OCI_INDEX,
            only_arm_changed.clone(),
            amd64(),
            vec![amd_old.clone()],
            Status::Updated,
        ),
        (
            OCI_INDEX,
            amd_changed.clone(),
            amd64(),
            vec![amd_old.clone()],
            Status::Outdated,
        ),
    ];
    for (i, (media_type, remote_index, own, local, expected)) in cases.into_iter().enumerate() {
        let mut manifests = Manifests::new();
        manifests.insert(new_list.clone(), remote_index);
        manifests.insert(old_list.clone(), old_index.clone());
        manifests.insert(amd_old.clone(), Manifest::Single);
        let t = target("example.com/app:v1", &local);
        let r = remote(new_list.clone(), Some(media_type));
        let verdict = decided(compare(&t, &own, &r, &manifests));
        assert_eq!(verdict.status, expected, "case {i}: {}", verdict.reason);
    }
}

#[test]
fn compare_asks_for_index_then_local_manifests() {
    let (old_list, new_list, amd) = (digest(10), digest(11), digest(1));
    let t = target("example.com/app:v1", std::slice::from_ref(&old_list));
    let r = remote(new_list.clone(), Some(OCI_INDEX));
    let mut manifests = Manifests::new();
    assert_eq!(
        compare(&t, &amd64(), &r, &manifests),
        Comparison::Fetch(vec![new_list.clone()])
    );
    manifests.insert(new_list, index(&[("linux", "amd64", None, amd)]));
    assert_eq!(
        compare(&t, &amd64(), &r, &manifests),
        Comparison::Fetch(vec![old_list])
    );
}

#[test]
fn compare_index_without_own_platform_is_error() {
    let t = target("example.com/app:v1", &[digest(1)]);
    let mut manifests = Manifests::new();
    manifests.insert(digest(11), index(&[("linux", "s390x", None, digest(5))]));
    let verdict = decided(compare(
        &t,
        &amd64(),
        &remote(digest(11), Some(OCI_INDEX)),
        &manifests,
    ));
    assert_eq!(verdict.status, Status::Error);
    assert!(verdict.reason.contains("linux/amd64"), "{}", verdict.reason);
}

#[test]
fn attestation_entries_never_chosen() {
    let attestation = index(&[
        ("unknown", "unknown", None, digest(7)),
        ("linux", "amd64", None, digest(1)),
    ]);
    let Manifest::Index(idx) = attestation else {
        unreachable!()
    };
    let own = Platform {
        os: "unknown".into(),
        architecture: "unknown".into(),
        variant: None,
    };
    assert_eq!(
        platform_entry(&idx, &amd64()).map(|e| e.digest.as_str()),
        Some(digest(1).as_str())
    );
    assert!(platform_entry(&idx, &own).is_none());
}

#[test]
fn repushed_tag_matches_second_repo_digest() {
    let (old, new) = (digest(1), digest(2));
    let facts = image(
        &["example.com/app:v1"],
        &[
            format!("example.com/app@{old}"),
            format!("example.com/app@{new}"),
        ],
    );
    let Plan::Check(targets) = plan("example.com/app:v1", &facts) else {
        panic!("expected targets");
    };
    assert_eq!(targets[0].local_digests, vec![old, new.clone()]);
    let verdict = decided(compare(
        &targets[0],
        &amd64(),
        &remote(new, Some(DOCKER_MANIFEST)),
        &Manifests::new(),
    ));
    assert_eq!(verdict.status, Status::Updated, "{}", verdict.reason);
}

#[test]
fn compare_ignores_changed_attestations() {
    let (old_list, new_list, amd, arm) = (digest(10), digest(11), digest(1), digest(2));
    let with_attestations = |attestation: String| {
        index(&[
            ("unknown", "unknown", None, attestation),
            ("linux", "amd64", None, amd.clone()),
            ("linux", "arm64", Some("v8"), arm.clone()),
        ])
    };
    let mut manifests = Manifests::new();
    manifests.insert(old_list.clone(), with_attestations(digest(20)));
    manifests.insert(new_list.clone(), with_attestations(digest(21)));
    let t = target("example.com/app:v1", &[old_list]);

    let verdict = decided(compare(
        &t,
        &amd64(),
        &remote(new_list, Some(OCI_INDEX)),
        &manifests,
    ));
    assert_eq!(verdict.status, Status::Updated, "{}", verdict.reason);
}

#[test]
fn platforms_normalise_like_containerd() {
    let cases = [
        (platform("arm64", None), platform("arm64", Some("v8")), true),
        (platform("aarch64", None), platform("arm64", None), true),
        (platform("arm", None), platform("arm", Some("v7")), true),
        (
            platform("arm", Some("v6")),
            platform("arm", Some("v7")),
            false,
        ),
        (platform("x86_64", None), amd64(), true),
        (platform("amd64", Some("v1")), amd64(), true),
        (platform("amd64", Some("v3")), amd64(), false),
        (platform("arm64", None), amd64(), false),
    ];
    for (a, b, expected) in cases {
        assert_eq!(a.matches(&b), expected, "{a} vs {b}");
    }
}

#[test]
fn image_id_never_compared() {
    // The image ID equals the remote digest's hex by construction: still outdated.
    let facts = ImageFacts {
        id: digest(9),
        ..image(&[], &[format!("example.com/app@{}", digest(1))])
    };
    let Plan::Check(targets) = plan("example.com/app:v1", &facts) else {
        panic!("expected targets");
    };
    let verdict = decided(compare(
        &targets[0],
        &amd64(),
        &remote(digest(9), Some(OCI_MANIFEST)),
        &Manifests::new(),
    ));
    assert_eq!(verdict.status, Status::Outdated);
}

#[test]
fn aggregate_follows_precedence() {
    use Status::*;
    let cases: &[(&[Status], Status)] = &[
        (&[], Skipped),
        (&[Skipped, Skipped], Skipped),
        (&[Preparing, Preparing], Preparing),
        (&[Updated, Outdated, Error], Outdated),
        (&[Updated, Processing, Error], Processing),
        (&[Updated, Error, Skipped], Error),
        (&[Updated, Skipped], Updated),
        (&[Preparing, Updated], Updated),
    ];
    for (statuses, expected) in cases {
        assert_eq!(
            aggregate(statuses.iter().copied()),
            *expected,
            "{statuses:?}"
        );
    }
}

#[test]
fn short_digest_has_twelve_hex_digits() {
    assert_eq!(short(&digest(1)), "sha256:000000000000");
    assert_eq!(short("abc"), "abc");
}
