//! The proxy's connection loop and request handler.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Request, Response, StatusCode, Uri};
use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::fault::Action;
use super::{InFlight, ProxyState, RecordedRequest, RequestKind};

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Headers that belong to one connection and must not be forwarded (RFC 9110, 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

/// Accepts connections until the listener fails for good, serving each on its own task.
pub(super) async fn serve(listener: TcpListener, state: Arc<ProxyState>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Usually a full file table; waiting lets other connections close.
                eprintln!("imgstat-testkit: proxy failed to accept a connection: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        state.count_connection();

        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(Arc::clone(&state), request));
            let connection = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            // A client closing its connection in the middle of a request is no proxy fault.
            let _ = connection.await;
        });
    }
}

async fn handle(
    state: Arc<ProxyState>,
    request: Request<Incoming>,
) -> Result<Response<TrackedBody>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let kind = RequestKind::of_path(&path);
    let in_flight = state.start_request(&method, kind);
    let received_headers = request.headers().clone();
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |value| value.as_str().to_owned());

    let latency = state.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }

    let fault = state.take_fault(&method, kind, &path, &received_headers);
    let response = match fault.map(|fault| fault.action) {
        Some(Action::Respond {
            status,
            headers,
            body,
        }) => canned_response(status, &headers, body),
        Some(Action::Redirect { status, base }) => {
            let location = format!("{base}{path_and_query}");
            canned_response(status, &[("Location".to_owned(), location)], String::new())
        }
        Some(Action::DropResponseHeader(name)) => {
            let mut response = forward(&state, request, &path_and_query).await;
            response.headers_mut().remove(name.as_str());
            response
        }
        None => forward(&state, request, &path_and_query).await,
    };

    state.record(RecordedRequest {
        method,
        path: path_and_query,
        kind,
        headers: received_headers,
        status: response.status().as_u16(),
    });
    Ok(response.map(|body| TrackedBody {
        inner: body,
        _in_flight: in_flight,
    }))
}

async fn forward(
    state: &ProxyState,
    mut request: Request<Incoming>,
    path_and_query: &str,
) -> Response<ProxyBody> {
    let target = format!("http://{}{path_and_query}", state.upstream);
    let uri: Uri = match target.parse() {
        Ok(uri) => uri,
        Err(error) => {
            let message = format!("invalid upstream URL {target}: {error}");
            return text_response(StatusCode::BAD_REQUEST, message);
        }
    };
    *request.uri_mut() = uri;
    remove_hop_by_hop(request.headers_mut());

    match state.client.request(request).await {
        Ok(response) => {
            let (mut parts, body) = response.into_parts();
            remove_hop_by_hop(&mut parts.headers);
            Response::from_parts(parts, body.boxed())
        }
        Err(error) => {
            let message = format!("proxy failed to forward to {}: {error}", state.upstream);
            text_response(StatusCode::BAD_GATEWAY, message)
        }
    }
}

/// Removes the standard hop-by-hop headers and those the `Connection` header names.
fn remove_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
}

fn canned_response(
    status: StatusCode,
    headers: &[(String, String)],
    body: String,
) -> Response<ProxyBody> {
    let mut response = Response::new(full_body(body));
    *response.status_mut() = status;
    for (name, value) in headers {
        // Fault headers come from the test, so an invalid one is a bug in the test.
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|_| panic!("invalid header name in a proxy fault: {name:?}"));
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|_| panic!("invalid header value in a proxy fault: {value:?}"));
        response.headers_mut().append(name, value);
    }
    response
}

fn text_response(status: StatusCode, message: String) -> Response<ProxyBody> {
    eprintln!("imgstat-testkit: {message}");
    let mut response = Response::new(full_body(message));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

fn full_body(text: String) -> ProxyBody {
    Full::new(Bytes::from(text))
        .map_err(|never: Infallible| match never {})
        .boxed()
}

/// A response body that keeps its request counted as in flight until it is dropped,
/// which hyper does once the body is sent or the connection closes.
pub(super) struct TrackedBody {
    inner: ProxyBody,
    _in_flight: InFlight,
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
