//! A real registry (`docker-registry`, CNCF distribution 2.8) on a free loopback port,
//! without auth, with htpasswd auth, or with token auth backed by a [`TokenServer`].

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::command::run;
use crate::names::temp_dir;
use crate::process::spawn_tied_to_process;
use crate::{Credentials, TokenPolicy, TokenServer};

/// `Accept` value for manifest requests: OCI index, Docker manifest list, OCI manifest
/// and Docker v2 manifest. Distribution 2.8 converts a manifest to schema 1 when a
/// request accepts none of them, so every manifest request should send this list.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";

const REGISTRY_BINARY: &str = "/usr/bin/docker-registry";
const START_ATTEMPTS: usize = 5;
const START_TIMEOUT: Duration = Duration::from_secs(20);

enum Auth {
    None,
    Htpasswd(Vec<Credentials>),
    Token {
        server: TokenServer,
        realm: Option<String>,
    },
}

/// Chooses the auth mode and transport of a [`Registry`] before it starts.
pub struct RegistryBuilder {
    auth: Auth,
    tls: bool,
}

/// A running `docker-registry` with fresh storage. `Drop` kills it and removes its
/// directory. The process also dies with the test process, so a killed test leaves
/// no registry behind.
///
/// In both auth modes the kit adds a user of its own that may push everywhere, used
/// by [`crate::TestImage::build`]; see [`Registry::push_credentials`].
pub struct Registry {
    host: String,
    tls: bool,
    child: Child,
    pusher: Option<Credentials>,
    token_server: Option<TokenServer>,
    dir: TempDir,
}

impl Registry {
    /// Starts a registry that requires no auth.
    pub fn start() -> Self {
        Self::builder().start()
    }

    /// Starts a registry with htpasswd (bcrypt) auth for `users`.
    pub fn with_htpasswd<'a>(users: impl IntoIterator<Item = &'a Credentials>) -> Self {
        users
            .into_iter()
            .fold(Self::builder(), |builder, user| builder.htpasswd_user(user))
            .start()
    }

    /// Starts a token server for `policy` and a registry that trusts its tokens.
    pub fn with_token_auth(policy: TokenPolicy) -> Self {
        Self::builder()
            .token_server(TokenServer::start(policy))
            .start()
    }

    pub fn builder() -> RegistryBuilder {
        RegistryBuilder {
            auth: Auth::None,
            tls: false,
        }
    }

    /// Returns `127.0.0.1:PORT`, the registry part of an image reference.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Returns `http://127.0.0.1:PORT`, or `https://…` for a registry started with
    /// [`RegistryBuilder::tls`].
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.host)
    }

    /// Returns whether the registry serves HTTPS only.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// Returns the URL of a manifest by tag or digest, on this registry.
    pub fn manifest_url(&self, repository: &str, reference: &str) -> String {
        format!("{}/v2/{repository}/manifests/{reference}", self.url())
    }

    /// Returns the token server when the registry uses token auth.
    pub fn token_server(&self) -> Option<&TokenServer> {
        self.token_server.as_ref()
    }

    /// Returns the kit's own user that may push any repository, `None` without auth.
    pub fn push_credentials(&self) -> Option<&Credentials> {
        self.pusher.as_ref()
    }

    /// Returns the registry's temporary directory with its config, log and storage.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Returns what the registry has logged so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(log_path(self.dir.path())).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RegistryBuilder {
    /// Switches to htpasswd auth and adds a user.
    pub fn htpasswd_user(mut self, user: &Credentials) -> Self {
        match &mut self.auth {
            Auth::Htpasswd(users) => users.push(user.clone()),
            _ => self.auth = Auth::Htpasswd(vec![user.clone()]),
        }
        self
    }

    /// Switches to token auth with this server, which the registry then owns.
    pub fn token_server(mut self, server: TokenServer) -> Self {
        self.auth = Auth::Token {
            server,
            realm: None,
        };
        self
    }

    /// Sets the `realm` clients are sent to in place of the token server's own
    /// address, for example a [`crate::Proxy`] in front of it. Needs token auth.
    pub fn token_realm(mut self, url: impl Into<String>) -> Self {
        match &mut self.auth {
            Auth::Token { realm, .. } => *realm = Some(url.into()),
            _ => panic!("token_realm needs token auth: call token_server first"),
        }
        self
    }

    /// Serves HTTPS only, with a self-signed certificate for `127.0.0.1` and
    /// `localhost` made with `openssl`. Docker, skopeo and clients that skip
    /// verification for loopback registries reach it; plain HTTP gets 400.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Starts the registry and waits until `GET /v2/` returns. Panics with the
    /// registry's log when it does not start.
    pub fn start(self) -> Registry {
        let dir = temp_dir("registry");
        let (auth_config, pusher, token_server) = prepare_auth(self.auth, dir.path());
        let tls_config = if self.tls {
            write_certificate(dir.path())
        } else {
            String::new()
        };

        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let config_path = write_config(dir.path(), port, &tls_config, &auth_config);
            let mut child = spawn_registry(&config_path, dir.path());
            match wait_until_ready(&mut child, port, self.tls, dir.path()) {
                Ok(()) => {
                    return Registry {
                        host: format!("127.0.0.1:{port}"),
                        tls: self.tls,
                        child,
                        pusher,
                        token_server,
                        dir,
                    };
                }
                Err(StartFailure::PortTaken) => continue,
                Err(StartFailure::Other(message)) => panic!("{message}"),
            }
        }
        panic!("docker-registry found no free port in {START_ATTEMPTS} attempts");
    }
}

/// Writes the auth files and returns the `auth:` section of the config, the kit's
/// pushing user and the token server.
fn prepare_auth(auth: Auth, dir: &Path) -> (String, Option<Credentials>, Option<TokenServer>) {
    match auth {
        Auth::None => (String::new(), None, None),
        Auth::Htpasswd(mut users) => {
            let pusher = Credentials::random("pusher");
            users.push(pusher.clone());
            let path = write_htpasswd(dir, &users);
            let config = format!(
                "auth:\n  htpasswd:\n    realm: imgstat-testkit\n    path: {}\n",
                path.display()
            );
            (config, Some(pusher), None)
        }
        Auth::Token { server, realm } => {
            let pusher = Credentials::random("pusher");
            server.add_user(&pusher);
            server.grant_push(&pusher.username, "*");
            let realm = realm.unwrap_or_else(|| server.realm());
            let config = format!(
                "auth:\n  token:\n    realm: {realm}\n    service: {}\n    issuer: {}\n    rootcertbundle: {}\n",
                server.service(),
                server.issuer(),
                server.cert_path().display()
            );
            (config, Some(pusher), Some(server))
        }
    }
}

/// Writes an htpasswd file with bcrypt hashes, the only kind distribution 2.8 accepts.
fn write_htpasswd(dir: &Path, users: &[Credentials]) -> PathBuf {
    let mut lines = String::new();
    for user in users {
        let line = run(Command::new("htpasswd")
            .arg("-Bbn")
            .arg(&user.username)
            .arg(&user.password));
        lines.push_str(line.trim());
        lines.push('\n');
    }
    let path = dir.join("htpasswd");
    std::fs::write(&path, lines).expect("failed to write the htpasswd file");
    path
}

/// Writes a self-signed certificate and its key and returns the `tls:` lines of the
/// `http:` section.
fn write_certificate(dir: &Path) -> String {
    let key = dir.join("tls.key");
    let certificate = dir.join("tls.crt");
    run(Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&certificate));
    format!(
        "  tls:\n    certificate: {}\n    key: {}\n",
        certificate.display(),
        key.display()
    )
}

fn write_config(dir: &Path, port: u16, tls_config: &str, auth_config: &str) -> PathBuf {
    let storage = dir.join("storage");
    let secret = format!("{:032x}", fastrand::u128(..));
    let config = format!(
        "version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
  secret: {secret}
{tls_config}health:
  storagedriver:
    enabled: false
{auth_config}",
        storage = storage.display()
    );
    let path = dir.join("config.yml");
    std::fs::write(&path, config).expect("failed to write the registry config");
    path
}

fn log_path(dir: &Path) -> PathBuf {
    dir.join("registry.log")
}

/// Returns a port that was free a moment ago. Another process may take it before the
/// registry binds it, which [`wait_until_ready`] detects so the start is retried.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("failed to bind 127.0.0.1:0");
    listener
        .local_addr()
        .expect("a bound listener has an address")
        .port()
}

fn spawn_registry(config_path: &Path, dir: &Path) -> Child {
    let log = File::create(log_path(dir)).expect("failed to create the registry log");
    let log_copy = log
        .try_clone()
        .expect("failed to duplicate the registry log handle");
    let mut command = Command::new(REGISTRY_BINARY);
    command
        .arg("serve")
        .arg(config_path)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_copy);
    spawn_tied_to_process(command)
        .unwrap_or_else(|error| panic!("failed to start {REGISTRY_BINARY}: {error}"))
}

enum StartFailure {
    PortTaken,
    Other(String),
}

/// Waits until this registry process logs that it listens on `port` and `GET /v2/`
/// returns 200 or 401, or for a TLS registry the 400 that Go's server sends to plain
/// HTTP. Checking the log first makes sure that the registry responding is this one
/// and not another process that took the port.
fn wait_until_ready(
    child: &mut Child,
    port: u16,
    tls: bool,
    dir: &Path,
) -> Result<(), StartFailure> {
    let ready = |status| match status {
        Some(200 | 401) => !tls,
        Some(400) => tls,
        _ => false,
    };
    let listening = format!("listening on 127.0.0.1:{port}");
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let log = std::fs::read_to_string(log_path(dir)).unwrap_or_default();
        if let Ok(Some(status)) = child.try_wait() {
            if log.contains("address already in use") {
                return Err(StartFailure::PortTaken);
            }
            let message =
                format!("docker-registry exited with {status} during start; its log:\n{log}");
            return Err(StartFailure::Other(message));
        }
        if log.contains(&listening) && ready(ping(port)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let message = format!(
                "docker-registry did not respond on port {port} within {START_TIMEOUT:?}; its log:\n{log}"
            );
            return Err(StartFailure::Other(message));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `GET /v2/` and returns the response status, or `None` when there is no response.
/// Uses a plain socket because the caller may be inside an async runtime, where a
/// blocking HTTP client would panic.
fn ping(port: u16) -> Option<u16> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request =
        format!("GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    let status_line = std::str::from_utf8(&head).ok()?;
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))?;
    status.trim().parse().ok()
}
