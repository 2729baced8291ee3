//! Rules that change what the proxy does with matching requests: return a canned
//! response, redirect to another server, or forward and strip a response header.

use axum::http::header::{ACCEPT, HeaderMap};
use axum::http::{Method, StatusCode};

use super::RequestKind;

/// A rule for matching requests. Unset filters match every request. What it does is
/// set by its constructor: [`Fault::status`] returns a fixed response without
/// forwarding, [`Fault::redirect`] sends the client elsewhere, and
/// [`Fault::drop_response_header`] forwards and removes a header from the response.
#[derive(Clone, Debug)]
pub struct Fault {
    pub(super) method: Option<Method>,
    pub(super) kind: Option<RequestKind>,
    pub(super) path_contains: Option<String>,
    pub(super) accept_lacks: Option<String>,
    pub(super) action: Action,
    pub(super) remaining: Option<usize>,
}

/// The proxy's handling of a request that a [`Fault`] matches.
#[derive(Clone, Debug)]
pub(super) enum Action {
    /// Returns this status, headers and body without forwarding.
    Respond {
        status: StatusCode,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Returns `status` with `Location` set to `base` followed by the request's path and
    /// query, without forwarding.
    Redirect { status: StatusCode, base: String },
    /// Forwards the request and removes this header from the upstream's response.
    DropResponseHeader(String),
}

impl Fault {
    /// Creates a rule returning `status` with an empty body for every request.
    /// Panics when `status` is not between 100 and 999.
    pub fn status(status: u16) -> Self {
        Self::with_action(Action::Respond {
            status: parse_status(status),
            headers: Vec::new(),
            body: String::new(),
        })
    }

    /// Creates a rule that responds with `status` (a 3xx) and a `Location` on `base_url`
    /// (`http://HOST:PORT`) with the request's own path and query, as a registry does
    /// that sends clients to a storage or CDN host.
    pub fn redirect(status: u16, base_url: impl Into<String>) -> Self {
        Self::with_action(Action::Redirect {
            status: parse_status(status),
            base: base_url.into().trim_end_matches('/').to_owned(),
        })
    }

    /// Creates a rule that forwards the request and removes header `name` from the
    /// response, such as `Docker-Content-Digest`, which some registries leave out.
    pub fn drop_response_header(name: impl Into<String>) -> Self {
        Self::with_action(Action::DropResponseHeader(name.into()))
    }

    fn with_action(action: Action) -> Self {
        Self {
            method: None,
            kind: None,
            path_contains: None,
            accept_lacks: None,
            action,
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

    /// Matches only requests whose `Accept` headers do not list `media_type` itself.
    /// A wildcard such as `*/*` does not count, so a rule per media type makes a
    /// registry that serves a manifest only to clients that name its type.
    pub fn accept_lacks(mut self, media_type: impl Into<String>) -> Self {
        self.accept_lacks = Some(media_type.into());
        self
    }

    /// Adds a response header. Panics unless the rule was made by [`Fault::status`].
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        match &mut self.action {
            Action::Respond { headers, .. } => headers.push((name.into(), value.into())),
            other => panic!("header() needs a Fault::status rule, not {other:?}"),
        }
        self
    }

    /// Adds `Retry-After` in seconds, as sent with 429 and 503.
    pub fn retry_after(self, seconds: u64) -> Self {
        self.header("Retry-After", seconds.to_string())
    }

    /// Sets the response body. Panics unless the rule was made by [`Fault::status`].
    pub fn body(mut self, text: impl Into<String>) -> Self {
        match &mut self.action {
            Action::Respond { body, .. } => *body = text.into(),
            other => panic!("body() needs a Fault::status rule, not {other:?}"),
        }
        self
    }

    /// Applies the rule to the next `count` matching requests only, then drops it.
    pub fn times(mut self, count: usize) -> Self {
        self.remaining = Some(count);
        self
    }

    pub(super) fn matches(
        &self,
        method: &Method,
        kind: RequestKind,
        path: &str,
        headers: &HeaderMap,
    ) -> bool {
        self.method
            .as_ref()
            .is_none_or(|expected| expected == method)
            && self.kind.is_none_or(|expected| expected == kind)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|text| path.contains(text))
            && self
                .accept_lacks
                .as_deref()
                .is_none_or(|media_type| !accepts(headers, media_type))
    }
}

fn parse_status(status: u16) -> StatusCode {
    StatusCode::from_u16(status).unwrap_or_else(|_| panic!("invalid HTTP status {status}"))
}

/// Returns whether any `Accept` header lists `media_type`, parameters aside.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(|item| item.split(';').next().unwrap_or("").trim())
        .any(|listed| listed.eq_ignore_ascii_case(media_type))
}

/// Returns the first rule matching the request and uses up one of its applications.
pub(super) fn take_match(
    faults: &mut Vec<Fault>,
    method: &Method,
    kind: RequestKind,
    path: &str,
    headers: &HeaderMap,
) -> Option<Fault> {
    let index = faults
        .iter()
        .position(|fault| fault.matches(method, kind, path, headers))?;
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
            "/v2/team/web/manifests/1",
            &HeaderMap::new()
        ));
        assert!(!fault.matches(
            &Method::GET,
            RequestKind::Manifest,
            "/v2/team/web/manifests/1",
            &HeaderMap::new()
        ));
        assert!(!fault.matches(
            &Method::HEAD,
            RequestKind::Blob,
            "/v2/team/web/blobs/x",
            &HeaderMap::new()
        ));
        assert!(!fault.matches(
            &Method::HEAD,
            RequestKind::Manifest,
            "/v2/team/api/manifests/1",
            &HeaderMap::new()
        ));
    }

    #[test]
    fn fault_with_times_is_used_up() {
        let mut faults = vec![Fault::status(429).times(2)];
        let path = "/v2/a/manifests/1";
        let none = HeaderMap::new();

        assert!(
            take_match(
                &mut faults,
                &Method::HEAD,
                RequestKind::Manifest,
                path,
                &none
            )
            .is_some()
        );
        assert!(
            take_match(
                &mut faults,
                &Method::HEAD,
                RequestKind::Manifest,
                path,
                &none
            )
            .is_some()
        );
        assert!(
            take_match(
                &mut faults,
                &Method::HEAD,
                RequestKind::Manifest,
                path,
                &none
            )
            .is_none()
        );
        assert!(faults.is_empty());
    }

    #[test]
    fn fault_without_times_stays() {
        let mut faults = vec![Fault::status(500)];

        for _ in 0..3 {
            assert!(
                take_match(
                    &mut faults,
                    &Method::GET,
                    RequestKind::Ping,
                    "/v2/",
                    &HeaderMap::new()
                )
                .is_some()
            );
        }
        assert_eq!(faults.len(), 1);
    }

    #[test]
    fn accept_lacks_reads_every_accept_value() {
        let fault = Fault::status(404).accept_lacks("application/vnd.oci.image.index.v1+json");
        let path = "/v2/a/manifests/1";
        let mut headers = HeaderMap::new();
        let matches = |headers: &HeaderMap| {
            fault.matches(&Method::HEAD, RequestKind::Manifest, path, headers)
        };

        assert!(matches(&headers));
        headers.append(ACCEPT, "*/*".parse().unwrap());
        assert!(matches(&headers));
        headers.append(
            ACCEPT,
            "application/vnd.docker.distribution.manifest.v2+json, \
             application/vnd.oci.image.index.v1+json; q=0.9"
                .parse()
                .unwrap(),
        );
        assert!(!matches(&headers));
    }
}
