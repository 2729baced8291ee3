//! Canned responses the proxy returns in place of forwarding a matching request.

use axum::http::{Method, StatusCode};

use super::RequestKind;

/// A rule that makes the proxy return a fixed status, headers and body for matching
/// requests, without forwarding them. Unset filters match every request.
#[derive(Clone, Debug)]
pub struct Fault {
    pub(super) method: Option<Method>,
    pub(super) kind: Option<RequestKind>,
    pub(super) path_contains: Option<String>,
    pub(super) status: StatusCode,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: String,
    pub(super) remaining: Option<usize>,
}

impl Fault {
    /// Creates a rule returning `status` with an empty body for every request.
    /// Panics when `status` is not between 100 and 999.
    pub fn status(status: u16) -> Self {
        Self {
            method: None,
            kind: None,
            path_contains: None,
            status: StatusCode::from_u16(status)
                .unwrap_or_else(|_| panic!("invalid HTTP status {status}")),
            headers: Vec::new(),
            body: String::new(),
            remaining: None,
        }
    }

    /// Matches only requests with this method.
    pub fn method(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Matches only requests of this kind.
    pub fn kind(mut self, kind: RequestKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Matches only requests whose path contains `text`.
    pub fn path_contains(mut self, text: impl Into<String>) -> Self {
        self.path_contains = Some(text.into());
        self
    }

    /// Adds a response header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Adds `Retry-After` in seconds, as sent with 429 and 503.
    pub fn retry_after(self, seconds: u64) -> Self {
        self.header("Retry-After", seconds.to_string())
    }

    /// Sets the response body.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.body = body.into();
        self
    }

    /// Applies the rule to the next `count` matching requests only, then drops it.
    pub fn times(mut self, count: usize) -> Self {
        self.remaining = Some(count);
        self
    }

    pub(super) fn matches(&self, method: &Method, kind: RequestKind, path: &str) -> bool {
        self.method
            .as_ref()
            .is_none_or(|expected| expected == method)
            && self.kind.is_none_or(|expected| expected == kind)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|text| path.contains(text))
    }
}

/// Returns the first rule matching the request and uses up one of its applications.
pub(super) fn take_match(
    faults: &mut Vec<Fault>,
    method: &Method,
    kind: RequestKind,
    path: &str,
) -> Option<Fault> {
    let index = faults
        .iter()
        .position(|fault| fault.matches(method, kind, path))?;
    let fault = faults[index].clone();
    if let Some(remaining) = &mut faults[index].remaining {
        *remaining -= 1;
        if *remaining == 0 {
            faults.remove(index);
        }
    }
    Some(fault)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_matches_all_filters() {
        let fault = Fault::status(500)
            .method(Method::HEAD)
            .kind(RequestKind::Manifest)
            .path_contains("team/web");

        assert!(fault.matches(
            &Method::HEAD,
            RequestKind::Manifest,
            "/v2/team/web/manifests/1"
        ));
        assert!(!fault.matches(
            &Method::GET,
            RequestKind::Manifest,
            "/v2/team/web/manifests/1"
        ));
        assert!(!fault.matches(&Method::HEAD, RequestKind::Blob, "/v2/team/web/blobs/x"));
        assert!(!fault.matches(
            &Method::HEAD,
            RequestKind::Manifest,
            "/v2/team/api/manifests/1"
        ));
    }

    #[test]
    fn fault_with_times_is_used_up() {
        let mut faults = vec![Fault::status(429).times(2)];
        let path = "/v2/a/manifests/1";

        assert!(take_match(&mut faults, &Method::HEAD, RequestKind::Manifest, path).is_some());
        assert!(take_match(&mut faults, &Method::HEAD, RequestKind::Manifest, path).is_some());
        assert!(take_match(&mut faults, &Method::HEAD, RequestKind::Manifest, path).is_none());
        assert!(faults.is_empty());
    }

    #[test]
    fn fault_without_times_stays() {
        let mut faults = vec![Fault::status(500)];

        for _ in 0..3 {
            assert!(take_match(&mut faults, &Method::GET, RequestKind::Ping, "/v2/").is_some());
        }
        assert_eq!(faults.len(), 1);
    }
}
