//! Starting a server for a test, a recording test double for the status computation, and
//! request helpers.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use imgstat::server::config::ServerConfig;
use imgstat::server::containers::ListedContainer;
use imgstat::server::image_status::{
    ImageStatusSource, Status, StatusFailure, StatusReply, StatusRequest,
};
use imgstat::server::metrics::Metrics;
use imgstat::server::registry_directory::RegistryDirectory;
use imgstat::server::store::Environment;
use imgstat::server::{RunningServer, open_state, start};
use reqwest::{Client, RequestBuilder, Response, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;

#[path = "../support/captured_logs.rs"]
mod captured_logs;

pub use captured_logs::CapturedLogs;

pub const ADMIN_NAME: &str = "admin";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
pub const USER_PASSWORD: &str = "user-password-1";

/// One status request as the test double received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    pub environment_id: i64,
    pub node_name: Option<String>,
    pub container_id: String,
    pub force: bool,
}

/// Test double for the status computation, for testing the HTTP layer only: it returns a
/// reply and a container listing set by the test, and records every status request.
#[derive(Default)]
pub struct FakeStatusSource {
    reply: Mutex<Option<Result<StatusReply, String>>>,
    requests: Mutex<Vec<RecordedRequest>>,
    containers: Mutex<Option<Result<Vec<ListedContainer>, String>>>,
    listed_environments: Mutex<Vec<i64>>,
}

impl FakeStatusSource {
    /// Makes every later request return `reply`.
    pub fn reply_with(&self, reply: StatusReply) {
        *self.reply.lock().unwrap() = Some(Ok(reply));
    }

    /// Makes every later request fail with `cause`.
    pub fn fail_with(&self, cause: &str) {
        *self.reply.lock().unwrap() = Some(Err(cause.to_owned()));
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.requests.lock().unwrap().clone()
    }

    /// Makes every later listing return `containers`; the default is an empty list.
    pub fn list_with(&self, containers: Vec<ListedContainer>) {
        *self.containers.lock().unwrap() = Some(Ok(containers));
    }

    /// Makes every later listing fail with `cause`.
    pub fn fail_listing_with(&self, cause: &str) {
        *self.containers.lock().unwrap() = Some(Err(cause.to_owned()));
    }

    /// Returns the ids of the environments whose containers were listed, in order.
    pub fn listed_environments(&self) -> Vec<i64> {
        self.listed_environments.lock().unwrap().clone()
    }
}

impl ImageStatusSource for FakeStatusSource {
    fn image_status<'a>(
        &'a self,
        request: StatusRequest<'a>,
    ) -> BoxFuture<'a, Result<StatusReply, StatusFailure>> {
        self.requests.lock().unwrap().push(RecordedRequest {
            environment_id: request.environment.id,
            node_name: request.node_name.map(str::to_owned),
            container_id: request.container_id.to_owned(),
            force: request.force,
        });
        let reply = self
            .reply
            .lock()
            .unwrap()
            .clone()
            .unwrap_or(Ok(StatusReply::new(Status::Updated)));
        Box::pin(async move { reply.map_err(StatusFailure::from) })
    }

    fn list_containers<'a>(
        &'a self,
        environment: &'a Environment,
    ) -> BoxFuture<'a, Result<Vec<ListedContainer>, StatusFailure>> {
        self.listed_environments
            .lock()
            .unwrap()
            .push(environment.id);
        let containers = self
            .containers
            .lock()
            .unwrap()
            .clone()
            .unwrap_or(Ok(Vec::new()));
        Box::pin(async move { containers.map_err(StatusFailure::from) })
    }
}

/// A server on a loopback port with its own data directory, and an HTTP client for it.
pub struct TestServer {
    pub server: RunningServer,
    pub source: Arc<FakeStatusSource>,
    pub client: Client,
    pub base_url: String,
    /// Kept last, so the directory is removed after the server stops using it.
    pub data_dir: TempDir,
}

impl TestServer {
    /// Starts a server with the default configuration in a new temporary data directory.
    pub async fn start() -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let config = ServerConfig::new(data_dir.path());
        Self::start_with(config, data_dir).await
    }

    /// Starts a server with `config`, whose data directory must be inside `data_dir`.
    pub async fn start_with(config: ServerConfig, data_dir: TempDir) -> Self {
        let source = Arc::new(FakeStatusSource::default());
        let server = start_server(&config, source.clone()).await;
        let base_url = server.url();
        Self {
            server,
            source,
            client: client(),
            base_url,
            data_dir,
        }
    }

    /// Stops the server and starts a new one on the same data directory, as a restart of
    /// the process would. The new server listens on another port.
    pub async fn restart(self) -> Self {
        let Self {
            server,
            client,
            data_dir,
            ..
        } = self;
        server.stop().await.unwrap();

        let source = Arc::new(FakeStatusSource::default());
        let server = start_server(&ServerConfig::new(data_dir.path()), source.clone()).await;
        let base_url = server.url();
        Self {
            server,
            source,
            client,
            base_url,
            data_dir,
        }
    }

    pub fn data_path(&self) -> &Path {
        self.data_dir.path()
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(format!("{}{path}", self.base_url))
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client.post(format!("{}{path}", self.base_url))
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.client.put(format!("{}{path}", self.base_url))
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.client.delete(format!("{}{path}", self.base_url))
    }

    /// Creates the first admin and returns its JWT.
    pub async fn init_admin(&self) -> String {
        self.init_admin_with_id().await.1
    }

    /// Creates the first admin and returns its id and JWT.
    pub async fn init_admin_with_id(&self) -> (i64, String) {
        let response = self
            .post("/api/users/admin/init")
            .json(&json!({"Username": ADMIN_NAME, "Password": ADMIN_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let id = id_of(response).await;
        (id, self.login(ADMIN_NAME, ADMIN_PASSWORD).await)
    }

    /// Logs in and returns the JWT; panics unless the login succeeds.
    pub async fn login(&self, username: &str, password: &str) -> String {
        let response = self
            .post("/api/auth")
            .json(&json!({"Username": username, "Password": password}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "login of {username}");
        let body: Value = response.json().await.unwrap();
        body["jwt"].as_str().unwrap().to_owned()
    }

    /// Creates a standard user as the admin and returns its id.
    pub async fn create_user(&self, admin_jwt: &str, username: &str) -> i64 {
        let response = self
            .post("/api/users")
            .bearer_auth(admin_jwt)
            .json(&json!({"Username": username, "Password": USER_PASSWORD, "Role": "user"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK, "create user {username}");
        id_of(response).await
    }

    /// Creates an environment on a Unix socket as the admin and returns its id.
    pub async fn create_environment(&self, admin_jwt: &str, name: &str) -> i64 {
        let response = self
            .post("/api/endpoints")
            .bearer_auth(admin_jwt)
            .json(&json!({"Name": name, "URL": "unix:///var/run/docker.sock"}))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::OK,
            "create environment {name}"
        );
        id_of(response).await
    }

    /// Grants `user_ids` access to an environment as the admin.
    pub async fn grant(&self, admin_jwt: &str, environment_id: i64, user_ids: &[i64]) {
        let response = self
            .put(&format!("/api/endpoints/{environment_id}/access"))
            .bearer_auth(admin_jwt)
            .json(&json!({"UserIds": user_ids}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
    }

    /// Creates an API key for `user_id` and returns the raw key.
    pub async fn create_api_key(&self, jwt: &str, user_id: i64) -> String {
        let response = self
            .post(&format!("/api/users/{user_id}/tokens"))
            .bearer_auth(jwt)
            .json(&json!({"Description": "test key"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Value = response.json().await.unwrap();
        body["RawAPIKey"].as_str().unwrap().to_owned()
    }

    /// Returns the ids of the environments listed for the caller with `jwt`.
    pub async fn listed_environment_ids(&self, jwt: &str) -> Vec<i64> {
        let response = self
            .get("/api/endpoints")
            .bearer_auth(jwt)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body: Vec<Value> = response.json().await.unwrap();
        body.iter().map(|env| env["Id"].as_i64().unwrap()).collect()
    }
}

async fn start_server(config: &ServerConfig, source: Arc<FakeStatusSource>) -> RunningServer {
    let metrics = Metrics::new().unwrap();
    let registries = Arc::new(RegistryDirectory::new());
    let state = open_state(config, metrics, source, registries)
        .await
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    start(listener, state).unwrap()
}

/// Builds a client that never uses a proxy from the environment, since the server is on
/// loopback.
pub fn client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// Reads the `Id` field of a JSON response.
pub async fn id_of(response: Response) -> i64 {
    let body: Value = response.json().await.unwrap();
    body["Id"].as_i64().unwrap()
}

/// Reads the `message` field of a JSON error response.
pub async fn message_of(response: Response) -> String {
    let body: Value = response.json().await.unwrap();
    body["message"].as_str().unwrap().to_owned()
}
