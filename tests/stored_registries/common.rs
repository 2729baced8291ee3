//! A server with the real status source, and helpers to store registries and ask for
//! statuses.

use std::time::Duration;

use imgstat::registry::RegistryConfig;
use imgstat::server::config::ServerConfig;
use imgstat::server::{RunningServer, open_engine_state, start};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;

#[path = "../support/captured_logs.rs"]
mod captured_logs;

pub use captured_logs::CapturedLogs;

const ADMIN: &str = "admin";
const ADMIN_PASSWORD: &str = "admin-password-1";

/// The message the API sends with every `error` status.
pub const GENERIC_ERROR: &str = "unable to determine image status";

/// A server with the real status source, an admin, and the local engine as an environment.
pub struct Server {
    server: RunningServer,
    client: reqwest::Client,
    jwt: String,
    environment: i64,
    registry_config: RegistryConfig,
    /// Kept last, so the directory is removed after the server stops using it.
    pub data_dir: TempDir,
}

impl Server {
    pub async fn start() -> Self {
        Self::start_with(RegistryConfig::default()).await
    }

    /// Starts a server whose registry client has the limits and policy of `registry_config`.
    pub async fn start_with(registry_config: RegistryConfig) -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let server = start_server(&data_dir, &registry_config).await;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let mut this = Self {
            server,
            client,
            jwt: String::new(),
            environment: 0,
            registry_config,
            data_dir,
        };

        let admin = json!({"Username": ADMIN, "Password": ADMIN_PASSWORD});
        let response = this
            .request(reqwest::Method::POST, "/api/users/admin/init")
            .json(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        this.log_in().await;
        let environment: Value = this
            .request(reqwest::Method::POST, "/api/endpoints")
            .bearer_auth(&this.jwt)
            .json(&json!({"Name": "local", "URL": "unix:///var/run/docker.sock"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        this.environment = environment["Id"].as_i64().unwrap();
        this
    }

    /// Stops the server, runs `between` on the data directory, and starts a new server on
    /// it, as a restart of the process would.
    pub async fn restart_after(mut self, between: impl AsyncFnOnce(&std::path::Path)) -> Self {
        let Self {
            server, data_dir, ..
        } = self;
        server.stop().await.unwrap();
        between(data_dir.path()).await;
        self = Self {
            server: start_server(&data_dir, &self.registry_config).await,
            data_dir,
            ..self
        };
        self.log_in().await;
        self
    }

    async fn log_in(&mut self) {
        let admin = json!({"Username": ADMIN, "Password": ADMIN_PASSWORD});
        let answer: Value = self
            .request(reqwest::Method::POST, "/api/auth")
            .json(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        self.jwt = answer["jwt"].as_str().unwrap().to_owned();
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.server.url()))
    }

    /// Stores a registry and returns its id; panics unless the API accepts it.
    pub async fn create_registry(&self, body: Value) -> i64 {
        let response = self
            .request(reqwest::Method::POST, "/api/registries")
            .bearer_auth(&self.jwt)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()["Id"]
            .as_i64()
            .unwrap()
    }

    /// Replaces a stored registry; panics unless the API accepts it.
    pub async fn update_registry(&self, id: i64, body: Value) {
        let response = self
            .request(reqwest::Method::PUT, &format!("/api/registries/{id}"))
            .bearer_auth(&self.jwt)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{body}");
    }

    /// Deletes a stored registry; panics unless the API accepts it.
    pub async fn delete_registry(&self, id: i64) {
        let response = self
            .request(reqwest::Method::DELETE, &format!("/api/registries/{id}"))
            .bearer_auth(&self.jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    /// Asks for a container's status with `force=true`, so that every call reaches the
    /// registry, and returns the body.
    pub async fn forced_status(&self, container: &str) -> Value {
        let path = format!(
            "/api/docker/{}/containers/{container}/image_status?force=true",
            self.environment
        );
        let response = self
            .request(reqwest::Method::GET, &path)
            .bearer_auth(&self.jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }
}

async fn start_server(data_dir: &TempDir, registry_config: &RegistryConfig) -> RunningServer {
    let mut config = ServerConfig::new(data_dir.path());
    config.status.wait_bound = Duration::from_secs(30);
    config.registry = registry_config.clone();
    let state = open_engine_state(&config).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start(listener, state).unwrap()
}

/// Returns the body of a registry entry for `url` with these credentials.
pub fn registry_entry(name: &str, url: &str, username: &str, password: &str) -> Value {
    json!({"Name": name, "URL": url, "Username": username, "Password": password})
}
