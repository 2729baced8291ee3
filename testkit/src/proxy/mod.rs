//! An HTTP/1.1 reverse proxy on a free loopback port that counts what passes through,
//! can delay every request, and can respond to matching requests in place of the upstream
//! (a status of the test's choice, a redirect) or strip a header from the upstream's
//! response.

mod fault;
mod forward;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::http::{HeaderMap, Method};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

pub use fault::Fault;

use crate::Registry;
use crate::server::ServerThread;

/// The kind of a registry request, derived from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// `/v2/`, the API version check that also triggers the auth challenge.
    Ping,
    /// `/v2/<name>/manifests/<reference>`.
    Manifest,
    /// `/v2/<name>/blobs/...`, including blob uploads.
    Blob,
    /// `/token` or a path ending in `/token`, as served by a token server.
    Token,
    Other,
}

impl RequestKind {
    pub fn of_path(path: &str) -> Self {
        if path == "/v2/" || path == "/v2" {
            RequestKind::Ping
        } else if path.starts_with("/v2/") && path.contains("/manifests/") {
            RequestKind::Manifest
        } else if path.starts_with("/v2/") && path.contains("/blobs/") {
            RequestKind::Blob
        } else if path == "/token" || path.ends_with("/token") {
            RequestKind::Token
        } else {
            RequestKind::Other
        }
    }
}

/// Counters of a [`Proxy`] since start or the last reset.
#[derive(Clone, Debug, Default)]
pub struct ProxyStats {
    /// Requests received, by method and kind, including those a [`Fault`] responded to.
    pub counts: HashMap<(Method, RequestKind), u64>,
    /// Maximum number of requests in progress at once, from arrival (before the
    /// injected latency) until the response body was sent.
    pub max_in_flight: usize,
    /// TCP connections accepted. Fewer connections than requests shows keep-alive.
    pub connections: u64,
}

impl ProxyStats {
    pub fn count(&self, method: &Method, kind: RequestKind) -> u64 {
        self.counts
            .get(&(method.clone(), kind))
            .copied()
            .unwrap_or(0)
    }

    /// Returns the number of requests of this kind, whatever their method.
    pub fn count_kind(&self, kind: RequestKind) -> u64 {
        self.counts
            .iter()
            .filter(|((_, counted), _)| *counted == kind)
            .map(|(_, count)| count)
            .sum()
    }

    pub fn total(&self) -> u64 {
        self.counts.values().sum()
    }
}

/// One request the proxy handled, recorded when its response head was ready.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: Method,
    /// Path and query as received.
    pub path: String,
    pub kind: RequestKind,
    /// Request headers as received, `Authorization` included.
    pub headers: HeaderMap,
    /// Status sent back: the upstream's, a fault's, or 502 when the upstream failed.
    pub status: u16,
}

struct ProxyState {
    upstream: String,
    client: Client<HttpConnector, Incoming>,
    latency: Mutex<Duration>,
    faults: Mutex<Vec<Fault>>,
    stats: Mutex<ProxyStats>,
    requests: Mutex<Vec<RecordedRequest>>,
    in_flight: AtomicUsize,
}

/// A reverse proxy in front of one upstream, stopped on `Drop`.
///
/// It forwards every request and response unchanged apart from hop-by-hop headers, so
/// `WWW-Authenticate` challenges pass through. `Host` is passed through as the client
/// sent it, so the absolute upload URLs a registry builds from it point back at the
/// proxy. Client and upstream connections are kept alive.
pub struct Proxy {
    state: Arc<ProxyState>,
    server: ServerThread,
}

impl Proxy {
    /// Starts a proxy on 127.0.0.1 forwarding to `upstream`, given as `HOST:PORT`.
    pub fn start(upstream: impl Into<String>) -> Self {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), upstream)
    }

    /// Starts a proxy on another loopback address, such as 127.0.0.2 or ::1, forwarding
    /// to `upstream`, given as `HOST:PORT`.
    pub fn start_on(address: IpAddr, upstream: impl Into<String>) -> Self {
        let state = Arc::new(ProxyState {
            upstream: upstream.into(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            latency: Mutex::new(Duration::ZERO),
            faults: Mutex::new(Vec::new()),
            stats: Mutex::new(ProxyStats::default()),
            requests: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
        });
        let serving = Arc::clone(&state);
        let server = ServerThread::spawn_on(address, "imgstat-proxy", move |listener| {
            forward::serve(listener, serving)
        });
        Self { state, server }
    }

    /// Starts a proxy in front of `registry`.
    pub fn in_front_of(registry: &Registry) -> Self {
        Self::start(registry.host())
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Returns `ADDRESS:PORT` (`127.0.0.1:PORT` unless started on another address),
    /// usable as the registry part of an image reference.
    pub fn host(&self) -> String {
        self.addr().to_string()
    }

    /// Returns `http://ADDRESS:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Returns the upstream this proxy forwards to, as `HOST:PORT`.
    pub fn upstream(&self) -> &str {
        &self.state.upstream
    }

    /// Delays every request by `latency` before forwarding it or returning a fault response.
    pub fn set_latency(&self, latency: Duration) {
        *lock(&self.state.latency) = latency;
    }

    /// Adds a rule after the existing ones. The first matching rule applies.
    pub fn add_fault(&self, fault: Fault) {
        lock(&self.state.faults).push(fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.state.faults).clear();
    }

    /// Returns a copy of the counters.
    pub fn stats(&self) -> ProxyStats {
        lock(&self.state.stats).clone()
    }

    /// Returns the number of requests with this method and kind.
    pub fn count(&self, method: Method, kind: RequestKind) -> u64 {
        self.stats().count(&method, kind)
    }

    /// Returns the requests handled since start or the last reset.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.state.requests).clone()
    }

    /// Zeroes the counters and clears the recorded requests. Faults and latency stay.
    pub fn reset_counters(&self) {
        *lock(&self.state.stats) = ProxyStats::default();
        lock(&self.state.requests).clear();
    }
}

impl ProxyState {
    fn latency(&self) -> Duration {
        *lock(&self.latency)
    }

    fn count_connection(&self) {
        lock(&self.stats).connections += 1;
    }

    /// Counts an arriving request and returns a guard that marks it done when dropped.
    fn start_request(self: &Arc<Self>, method: &Method, kind: RequestKind) -> InFlight {
        let now_in_flight = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        let mut stats = lock(&self.stats);
        *stats.counts.entry((method.clone(), kind)).or_default() += 1;
        stats.max_in_flight = stats.max_in_flight.max(now_in_flight);
        InFlight(Arc::clone(self))
    }

    fn take_fault(
        &self,
        method: &Method,
        kind: RequestKind,
        path: &str,
        headers: &HeaderMap,
    ) -> Option<Fault> {
        fault::take_match(&mut lock(&self.faults), method, kind, path, headers)
    }

    fn record(&self, request: RecordedRequest) {
        lock(&self.requests).push(request);
    }
}

/// Marks one request as in progress for as long as it lives.
struct InFlight(Arc<ProxyState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_kind_from_path() {
        let cases = [
            ("/v2/", RequestKind::Ping),
            ("/v2", RequestKind::Ping),
            ("/v2/team/web/manifests/1.0", RequestKind::Manifest),
            (
                "/v2/library/app/manifests/sha256:abc",
                RequestKind::Manifest,
            ),
            ("/v2/team/web/blobs/sha256:abc", RequestKind::Blob),
            ("/v2/team/web/blobs/uploads/", RequestKind::Blob),
            ("/token", RequestKind::Token),
            ("/service/token", RequestKind::Token),
            ("/v2/_catalog", RequestKind::Other),
            ("/", RequestKind::Other),
        ];

        for (path, expected) in cases {
            assert_eq!(RequestKind::of_path(path), expected, "{path}");
        }
    }
}
