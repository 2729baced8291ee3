//! A fake registry whose responses never end, for faults a real registry does not
//! produce: a response head that never finishes, and a body without end. It speaks just
//! enough HTTP/1.1 by hand to send what an HTTP server library refuses to send.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::server::ServerThread;

/// How an [`EndlessServer`] responds to every request but `GET /v2/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endless {
    /// A status line, then header fields as fast as the client reads them, and never the
    /// blank line that ends the head.
    HeaderFields,
    /// A status line, then one header field whose value grows as fast as the client
    /// reads it.
    HeaderValue,
    /// A status line, then one header field per interval, and never the end of the head.
    /// Every read brings new bytes, so only a bound on the whole request ends it.
    SlowHeaderFields(Duration),
    /// `405` to `HEAD`, so that a registry client falls back to `GET`, and to `GET` a
    /// complete `200` head followed by body chunks as fast as the client reads them.
    Body,
    /// Like [`Endless::Body`], with one small chunk per interval.
    SlowBody(Duration),
}

/// Size of the body chunks of [`Endless::Body`] and of the header value pieces of
/// [`Endless::HeaderValue`].
const PIECE_BYTES: usize = 16 * 1024;

/// Largest request head read before the connection is closed.
const MAX_REQUEST_HEAD_BYTES: usize = 64 * 1024;

/// The response to `GET /v2/`: a registry without auth.
const PING_RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\n\
Content-Type: application/json\r\n\
Docker-Distribution-Api-Version: registry/2.0\r\n\
Content-Length: 2\r\n\
\r\n\
{}";

/// The response to `HEAD` in the body modes, which makes a registry client send `GET`.
const METHOD_NOT_ALLOWED: &[u8] = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n";

struct EndlessState {
    endless: Endless,
    requests: Mutex<Vec<String>>,
    /// Endless responses still being written.
    in_progress: AtomicUsize,
}

/// A fake registry on a free loopback port, stopped on `Drop`. It responds to `GET /v2/`
/// with 200, as a registry without auth does, and to every other request with the
/// [`Endless`] response it was started with. It closes a connection that starts a TLS
/// handshake, so a client that tries HTTPS first falls back to plain HTTP.
pub struct EndlessServer {
    state: Arc<EndlessState>,
    server: ServerThread,
}

impl EndlessServer {
    pub fn start(endless: Endless) -> Self {
        let state = Arc::new(EndlessState {
            endless,
            requests: Mutex::new(Vec::new()),
            in_progress: AtomicUsize::new(0),
        });
        let serving = Arc::clone(&state);
        let server =
            ServerThread::spawn("imgstat-endless", move |listener| serve(listener, serving));
        Self { state, server }
    }

    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// Returns `127.0.0.1:PORT`, usable as the registry part of an image reference.
    pub fn host(&self) -> String {
        self.addr().to_string()
    }

    /// Returns `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr())
    }

    /// Returns the request line (`METHOD TARGET`) of every request received, in order.
    pub fn requests(&self) -> Vec<String> {
        self.state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Returns the number of endless responses still being written. It drops when a
    /// client closes the connection, which the server notices when its next write fails.
    /// Idle keep-alive connections between requests do not count.
    pub fn responses_in_progress(&self) -> usize {
        self.state.in_progress.load(Ordering::SeqCst)
    }

    /// Waits until no endless response is being written, and returns whether that
    /// happened within `limit`.
    pub fn wait_until_abandoned(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while self.responses_in_progress() > 0 {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }
}

async fn serve(listener: TcpListener, state: Arc<EndlessState>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            // Any I/O error means the client went away, which ends the connection.
            let _ = serve_connection(stream, &state).await;
        });
    }
}

async fn serve_connection(mut stream: TcpStream, state: &EndlessState) -> io::Result<()> {
    let mut buffer = Vec::new();
    while let Some(request_line) = read_request_head(&mut stream, &mut buffer).await? {
        state
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request_line.clone());
        let mut parts = request_line.split(' ');
        let method = parts.next().unwrap_or_default();
        let target = parts.next().unwrap_or_default();
        if method == "GET" && (target == "/v2/" || target == "/v2") {
            stream.write_all(PING_RESPONSE).await?;
            continue;
        }
        let endless_body = matches!(state.endless, Endless::Body | Endless::SlowBody(_));
        if method == "HEAD" && endless_body {
            stream.write_all(METHOD_NOT_ALLOWED).await?;
            continue;
        }
        state.in_progress.fetch_add(1, Ordering::SeqCst);
        let ended = answer_endlessly(&mut stream, state.endless).await;
        state.in_progress.fetch_sub(1, Ordering::SeqCst);
        return ended;
    }
    Ok(())
}

/// Reads one request head (requests are expected without a body) and returns its
/// request line. Returns `None` when the client closes the connection, starts a TLS
/// handshake or sends a head larger than [`MAX_REQUEST_HEAD_BYTES`].
async fn read_request_head(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
) -> io::Result<Option<String>> {
    loop {
        // A TLS record of type handshake starts with byte 0x16.
        if buffer.first() == Some(&0x16) || buffer.len() > MAX_REQUEST_HEAD_BYTES {
            return Ok(None);
        }
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = buffer.drain(..end + 4).collect();
            let text = String::from_utf8_lossy(&head);
            let request_line = text.lines().next().unwrap_or_default();
            let mut parts = request_line.split(' ');
            let method = parts.next().unwrap_or_default();
            let target = parts.next().unwrap_or_default();
            return Ok(Some(format!("{method} {target}")));
        }
        let mut chunk = [0u8; 4096];
        let read = stream.read(&mut chunk).await?;
        if read == 0 {
            return Ok(None);
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
}

/// Writes the endless response until a write fails, which happens once the client has
/// closed the connection.
async fn answer_endlessly(stream: &mut TcpStream, endless: Endless) -> io::Result<()> {
    match endless {
        Endless::HeaderFields => {
            stream.write_all(b"HTTP/1.1 200 OK\r\n").await?;
            for index in 0u64.. {
                let field = format!("X-Endless-{index}: {index}\r\n");
                stream.write_all(field.as_bytes()).await?;
            }
        }
        Endless::HeaderValue => {
            stream.write_all(b"HTTP/1.1 200 OK\r\nX-Endless: ").await?;
            let piece = vec![b'a'; PIECE_BYTES];
            loop {
                stream.write_all(&piece).await?;
            }
        }
        Endless::SlowHeaderFields(interval) => {
            stream.write_all(b"HTTP/1.1 200 OK\r\n").await?;
            for index in 0u64.. {
                let field = format!("X-Endless-{index}: {index}\r\n");
                stream.write_all(field.as_bytes()).await?;
                tokio::time::sleep(interval).await;
            }
        }
        Endless::Body => {
            write_body_head(stream).await?;
            let chunk = chunk_of(PIECE_BYTES);
            loop {
                stream.write_all(&chunk).await?;
            }
        }
        Endless::SlowBody(interval) => {
            write_body_head(stream).await?;
            let chunk = chunk_of(16);
            loop {
                stream.write_all(&chunk).await?;
                tokio::time::sleep(interval).await;
            }
        }
    }
    Ok(())
}

async fn write_body_head(stream: &mut TcpStream) -> io::Result<()> {
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\n\
Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
Transfer-Encoding: chunked\r\n\
\r\n",
        )
        .await
}

/// Returns one chunk of chunked transfer coding with `size` bytes of data.
fn chunk_of(size: usize) -> Vec<u8> {
    let mut chunk = format!("{size:x}\r\n").into_bytes();
    chunk.extend(std::iter::repeat_n(b'{', size));
    chunk.extend_from_slice(b"\r\n");
    chunk
}
