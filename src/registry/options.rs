//! Per-registry connection options that come from outside the client, such as the
//! server's stored registries: plain HTTP or unverified TLS, and extra CA certificates.

use std::time::Duration;

use super::RegistryConfig;

/// Connection options of one registry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryOptions {
    /// Allow plain HTTP and unverified TLS, as for a registry listed as insecure.
    pub insecure: bool,
    /// PEM CA certificates trusted for this registry in addition to the system roots.
    pub ca_certs_pem: Option<String>,
}

/// A lookup of [`RegistryOptions`] by registry.
///
/// The client calls it before its first request to a registry and again after
/// [`RegistryClient::reset_registry`](super::RegistryClient::reset_registry), never per
/// request. It runs under the client's registry map lock, so it must not block for long.
pub trait RegistryOptionsSource: Send + Sync {
    /// Returns the options of `registry`, the name as in normalised references
    /// (`docker.io`, `host:port`).
    fn options(&self, registry: &str) -> RegistryOptions;
}

/// Maximum size of the header list of an HTTP/2 response, in bytes as HTTP/2 counts them
/// (names, values and 32 bytes per field). It is hyper 1.x's default, set here so that a
/// change of that default does not loosen the bound.
// NOTE: no test covers this bound, because the test kit has no HTTP/2 server.
const MAX_HTTP2_HEADER_LIST_BYTES: u32 = 16 * 1024;

/// Builds the HTTP client every registry request goes through, with the shared limits and
/// the outbound policy's resolver.
///
/// NOTE: reqwest 0.13 has no setting for the size of an HTTP/1 response head. hyper 1.x
/// rejects a head that outgrows its read buffer (8 KiB plus 400 KiB), and the request
/// timeout ends a head that grows slowly.
pub(crate) fn client_builder(config: &RegistryConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("imgstat/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .connect_timeout(config.connect_timeout)
        .pool_max_idle_per_host(config.max_in_flight)
        .pool_idle_timeout(Duration::from_secs(90))
        .tcp_nodelay(true)
        .http1_max_headers(config.max_response_headers)
        .http2_max_header_list_size(MAX_HTTP2_HEADER_LIST_BYTES)
        .dns_resolver(super::policy::CheckedResolver::new(config.outbound.clone()))
}

/// Failure to build a client that trusts a registry's CA certificates.
#[derive(Debug, thiserror::Error)]
#[error("invalid CA certificates for registry {registry}")]
pub struct CaCertError {
    pub registry: String,
    #[source]
    pub source: reqwest::Error,
}

/// Builds a client that trusts `ca_certs_pem` besides the system roots, and accepts any
/// certificate when `insecure` is set.
pub(crate) fn client_with_ca_certs(
    builder: reqwest::ClientBuilder,
    registry: &str,
    ca_certs_pem: &str,
    insecure: bool,
) -> Result<reqwest::Client, CaCertError> {
    let wrap = |source| CaCertError {
        registry: registry.to_owned(),
        source,
    };
    let certs = reqwest::Certificate::from_pem_bundle(ca_certs_pem.as_bytes()).map_err(wrap)?;
    builder
        .tls_certs_merge(certs)
        .tls_danger_accept_invalid_certs(insecure)
        .build()
        .map_err(wrap)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::path::Path;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};

    use super::*;

    /// Runs openssl with `args` in `dir` and panics with its output when it fails.
    fn openssl(dir: &Path, args: &[&str]) {
        let output = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("failed to run openssl");
        assert!(output.status.success(), "openssl {args:?}: {output:?}");
    }

    /// Writes a CA (`ca.pem`) and a server certificate for 127.0.0.1 signed by it
    /// (`server.pem`, `server.key`) into `dir`.
    fn make_certificates(dir: &Path) {
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            dir,
            &[
                &["req", "-x509"],
                &ec[..],
                &[
                    "-days",
                    "1",
                    "-subj",
                    "/CN=imgstat test CA",
                    "-keyout",
                    "ca.key",
                    "-out",
                    "ca.pem",
                ],
            ]
            .concat(),
        );
        openssl(
            dir,
            &[
                &["req"],
                &ec[..],
                &[
                    "-subj",
                    "/CN=127.0.0.1",
                    "-keyout",
                    "server.key",
                    "-out",
                    "server.csr",
                ],
            ]
            .concat(),
        );
        std::fs::write(
            dir.join("server.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "1",
                "-extfile",
                "server.ext",
                "-out",
                "server.pem",
            ],
        );
    }

    /// An `openssl s_server` that serves HTTPS on a loopback port, killed on drop.
    struct TlsServer {
        child: Child,
        port: u16,
    }

    impl TlsServer {
        fn start(dir: &Path) -> Self {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let child = Command::new("openssl")
                .args(["s_server", "-quiet", "-www", "-accept"])
                .arg(format!("127.0.0.1:{port}"))
                .args(["-cert", "server.pem", "-key", "server.key"])
                .current_dir(dir)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("failed to start openssl s_server");
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(Instant::now() < deadline, "openssl s_server did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
            Self { child, port }
        }
    }

    impl Drop for TlsServer {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn builder() -> reqwest::ClientBuilder {
        client_builder(&RegistryConfig::default())
    }

    #[tokio::test]
    async fn ca_certs_verify_registry_certificate() {
        let dir = tempfile::tempdir().unwrap();
        make_certificates(dir.path());
        let ca = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
        let server = TlsServer::start(dir.path());
        let url = format!("https://127.0.0.1:{}/", server.port);

        let with_ca = client_with_ca_certs(builder(), "127.0.0.1", &ca, false).unwrap();
        let response = with_ca.get(&url).send().await;
        assert!(response.is_ok(), "{response:?}");

        let without_ca = builder().build().unwrap();
        let rejected = without_ca.get(&url).send().await;
        assert!(rejected.is_err(), "an unknown CA was trusted");
    }

    #[test]
    fn invalid_ca_certs_are_an_error() {
        let pem = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n";

        let error =
            client_with_ca_certs(builder(), "registry.example.com", pem, false).unwrap_err();

        assert_eq!(error.registry, "registry.example.com");
    }
}
