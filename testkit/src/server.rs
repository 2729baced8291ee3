//! Runs an in-process server on a thread with its own tokio runtime, so it serves
//! requests while the test thread blocks (for example in `docker push`), whatever
//! runtime the test itself uses.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::thread::{self, JoinHandle};

use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A server on a free loopback port, `127.0.0.1` unless given another address. Dropping
/// it stops the server at once: open connections are closed and requests in progress are
/// abandoned.
pub(crate) struct ServerThread {
    addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Binds a free port on 127.0.0.1 and runs `serve(listener)` on a new thread named
    /// `name`.
    pub(crate) fn spawn<F, Fut>(name: &str, serve: F) -> Self
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        Self::spawn_on(IpAddr::V4(Ipv4Addr::LOCALHOST), name, serve)
    }

    /// Binds a free port on `address`, such as 127.0.0.2 or ::1, and runs
    /// `serve(listener)` on a new thread named `name`.
    pub(crate) fn spawn_on<F, Fut>(address: IpAddr, name: &str, serve: F) -> Self
    where
        F: FnOnce(TcpListener) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let listener = StdListener::bind((address, 0)).unwrap_or_else(|error| {
            panic!("failed to bind a free port on {address} for {name}: {error}")
        });
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        listener
            .set_nonblocking(true)
            .expect("failed to make the listener non-blocking");

        let (shutdown_tx, shutdown_rx) = oneshot::channel();
        let thread_name = format!("{name}-{}", addr.port());
        let thread = thread::Builder::new()
            .name(thread_name)
            .spawn(move || run(listener, serve, shutdown_rx))
            .unwrap_or_else(|error| panic!("failed to start the {name} thread: {error}"));

        Self {
            addr,
            shutdown: Some(shutdown_tx),
            thread: Some(thread),
        }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }
}

fn run<F, Fut>(listener: StdListener, serve: F, shutdown: oneshot::Receiver<()>)
where
    F: FnOnce(TcpListener) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("failed to build a tokio runtime for a test server");
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener).expect("failed to register the listener");
        tokio::select! {
            () = serve(listener) => {}
            _ = shutdown => {}
        }
    });
    // Dropping the runtime here cancels the connection tasks the server spawned.
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
