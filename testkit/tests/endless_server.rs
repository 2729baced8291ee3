//! The endless server responds to `GET /v2/` like a registry, sends each kind of endless
//! response, closes TLS handshakes, and notices when a client goes away.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use imgstat_testkit::{Endless, EndlessServer};

/// Connects with a read timeout, so that a test reading an endless response never hangs.
fn connect(server: &EndlessServer) -> TcpStream {
    let stream = TcpStream::connect(server.addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Reads until `done` holds for the bytes received, and returns them as text.
fn read_until(stream: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> String {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    while !done(&received) {
        let read = stream.read(&mut chunk).unwrap();
        assert!(read > 0, "closed after {received:?}");
        received.extend_from_slice(&chunk[..read]);
    }
    String::from_utf8_lossy(&received).into_owned()
}

fn read_at_least(stream: &mut TcpStream, bytes: usize) -> String {
    read_until(stream, |received| received.len() >= bytes)
}

#[test]
fn ping_answered_then_head_never_ends() {
    let server = EndlessServer::start(Endless::HeaderFields);
    let mut stream = connect(&server);

    stream
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let ping = read_until(&mut stream, |r| r.ends_with(b"\r\n\r\n{}"));
    assert!(ping.starts_with("HTTP/1.1 200 OK\r\n"), "{ping}");
    assert!(ping.ends_with("\r\n\r\n{}"), "{ping}");

    stream
        .write_all(b"HEAD /v2/team/app/manifests/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_at_least(&mut stream, 256 * 1024);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\nX-Endless-0: 0\r\n"));
    assert!(!head.contains("\r\n\r\n"), "the head ended");
    assert_eq!(
        server.requests(),
        ["GET /v2/", "HEAD /v2/team/app/manifests/1"]
    );

    drop(stream);
    assert!(server.wait_until_abandoned(Duration::from_secs(5)));
}

#[test]
fn header_value_never_ends() {
    let server = EndlessServer::start(Endless::HeaderValue);
    let mut stream = connect(&server);

    stream
        .write_all(b"GET /v2/team/app/manifests/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_at_least(&mut stream, 256 * 1024);
    assert!(
        head.starts_with("HTTP/1.1 200 OK\r\nX-Endless: aaaa"),
        "{}",
        &head[..64]
    );
    assert!(!head[18..].contains("\r\n"), "the header field ended");
}

#[test]
fn body_follows_405_to_head() {
    let server = EndlessServer::start(Endless::Body);
    let mut stream = connect(&server);

    stream
        .write_all(b"HEAD /v2/team/app/manifests/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let refused = read_until(&mut stream, |r| r.ends_with(b"\r\n\r\n"));
    assert!(refused.starts_with("HTTP/1.1 405 "), "{refused}");

    stream
        .write_all(b"GET /v2/team/app/manifests/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let body = read_at_least(&mut stream, 256 * 1024);
    assert!(body.starts_with("HTTP/1.1 200 OK\r\n"), "{}", &body[..64]);
    assert!(body.contains("Transfer-Encoding: chunked\r\n\r\n4000\r\n{{{{"));
}

#[test]
fn slow_header_fields_keep_coming() {
    let interval = Duration::from_millis(50);
    let server = EndlessServer::start(Endless::SlowHeaderFields(interval));
    let mut stream = connect(&server);

    stream
        .write_all(b"GET /v2/team/app/manifests/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let head = read_at_least(&mut stream, 100);
    assert!(head.contains("X-Endless-3: 3\r\n"), "{head}");
}

#[test]
fn tls_handshake_closes_connection() {
    let server = EndlessServer::start(Endless::HeaderFields);
    let mut stream = connect(&server);

    // The first bytes of a TLS ClientHello record.
    stream.write_all(&[0x16, 0x03, 0x01, 0x00, 0x40]).unwrap();
    let mut received = Vec::new();
    let read = stream.read_to_end(&mut received).unwrap();

    assert_eq!(read, 0, "{received:?}");
    assert!(server.requests().is_empty());
}
