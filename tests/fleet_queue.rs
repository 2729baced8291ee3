//! A fleet larger than the per-registry bound, against a registry that responds slowly:
//! waiting for a slot is not limited by the request time-out.

mod common;

use std::time::Duration;

use common::{check, docker};
use imgstat_testkit::{DockerConfigDir, Proxy, Registry, TestContainer, TestImage};

const TAGS: usize = 50;
const CONTAINERS: usize = 200;

#[test]
fn queued_requests_do_not_time_out() {
    let registry = Registry::start();
    let proxy = Proxy::in_front_of(&registry);
    let host = proxy.host();
    let current = TestImage::build_and_push(&host, "fleet/queue", "current", None);
    let newer = TestImage::build_and_push(&host, "fleet/queue", "newer", None);
    let repository = current.repository().to_owned();

    // Every tag names the `current` image on the engine. In the registry the first half
    // of the tags point at it and the second half at `newer`.
    let mut references = Vec::new();
    for i in 0..TAGS {
        let tag = format!("t{i}");
        let registry_digest = if i < TAGS / 2 {
            current.digest()
        } else {
            newer.digest()
        };
        current.tag_in_registry(&repository, registry_digest, &tag);
        let reference = format!("{host}/{repository}:{tag}");
        docker(&["tag", current.id(), &reference]);
        references.push(reference);
    }
    let containers: Vec<(TestContainer, &str)> = (0..CONTAINERS)
        .map(|i| {
            let tag = i % TAGS;
            let expected = if tag < TAGS / 2 {
                "updated"
            } else {
                "outdated"
            };
            (TestContainer::create(&references[tag], "queued"), expected)
        })
        .collect();
    let names: Vec<&str> = containers.iter().map(|(c, _)| c.name()).collect();

    // Two slots for 50 tags: 25 rounds of 100 ms, about 2.5 s in the queue for the last
    // request, more than the 1 s each request may take once sent.
    proxy.set_latency(Duration::from_millis(100));
    proxy.reset_counters();
    let options = ["--max-in-flight", "2", "--timeout", "1"];
    let reports = check(&DockerConfigDir::new(), &options, &names);

    for (container, expected) in &containers {
        let name = container.name();
        assert!(
            !reports.message(name).contains("did not answer within"),
            "{name}: {}",
            reports.message(name)
        );
        assert_eq!(reports.status(name), *expected, "{name}: {reports:?}");
    }
    assert!(proxy.stats().max_in_flight <= 2, "{:?}", proxy.stats());
}
