//! Request counters per registry, for logs, metrics and benchmarks.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use reqwest::Method;
use serde::Serialize;

use super::exchange::RequestKind;

/// Requests sent to one registry (and its token realm) since the client was created.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RegistryStats {
    pub registry: String,
    /// `GET /v2/` requests that learn the scheme and auth challenge.
    pub pings: u64,
    pub manifest_heads: u64,
    pub manifest_gets: u64,
    pub token_requests: u64,
    /// The most requests that were in flight at once.
    pub max_in_flight: usize,
}

#[derive(Default)]
pub(crate) struct Counters {
    pings: AtomicU64,
    manifest_heads: AtomicU64,
    manifest_gets: AtomicU64,
    token_requests: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

impl Counters {
    pub(crate) fn count(&self, kind: RequestKind, method: &Method) {
        let counter = match kind {
            RequestKind::Ping => &self.pings,
            RequestKind::Token => &self.token_requests,
            RequestKind::Manifest if method == Method::HEAD => &self.manifest_heads,
            RequestKind::Manifest => &self.manifest_gets,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request in flight until the returned guard is dropped.
    pub(crate) fn enter(&self) -> InFlight<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }

    pub(crate) fn snapshot(&self, registry: &str) -> RegistryStats {
        RegistryStats {
            registry: registry.to_owned(),
            pings: self.pings.load(Ordering::Relaxed),
            manifest_heads: self.manifest_heads.load(Ordering::Relaxed),
            manifest_gets: self.manifest_gets.load(Ordering::Relaxed),
            token_requests: self.token_requests.load(Ordering::Relaxed),
            max_in_flight: self.max_in_flight.load(Ordering::Relaxed),
        }
    }
}

/// Decrements the in-flight count when a request ends, however it ends.
pub(crate) struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
