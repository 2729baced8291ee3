//! Registries: the credentials and connection options the server uses for registry hosts,
//! managed by admins. The password is write-only: no response, log line or error message
//! contains it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{JsonBody, PathParams};
use crate::credentials::{RegistryLocation, Secret};
use crate::registry::is_loopback_host;
use crate::server::AppState;
use crate::server::auth::AdminUser;
use crate::server::error::{ApiError, ErrorBody};
use crate::server::store::{PasswordUpdate, RegistryFields, RegistryRecord};

/// Maximum length of a registry name, in characters.
const MAX_NAME_CHARS: usize = 128;
/// Maximum length of a username, in characters.
const MAX_USERNAME_CHARS: usize = 256;
/// Maximum length of a password or token, in bytes.
const MAX_PASSWORD_BYTES: usize = 4096;
/// Maximum length of the CA certificates, in bytes.
const MAX_CA_CERT_BYTES: usize = 64 * 1024;

/// A registry as an admin creates or replaces it. There is no `Debug`, since it carries
/// the password.
#[derive(Deserialize, ToSchema)]
pub struct RegistryRequest {
    /// Unique name, for people.
    #[serde(rename = "Name")]
    pub name: String,
    /// `HOST[:PORT][/PATH/PREFIX]`, optionally with `https://` or `http://`. The entry
    /// applies to repositories under the path prefix, or to the whole host without one.
    #[serde(rename = "URL")]
    pub url: String,
    /// User name for the registry or its token server; requires `Password`.
    #[serde(rename = "Username", default)]
    pub username: Option<String>,
    /// Password or access token; write-only. On update, leave it out to keep the stored
    /// one, which is possible only while the host of the URL and the username stay.
    #[serde(rename = "Password", default)]
    #[schema(value_type = Option<String>, format = Password)]
    pub password: Option<serde_json::Value>,
    /// Reach the host over plain HTTP or with an unverified certificate. It applies to the
    /// whole host: any entry for the host with `Insecure` makes the host insecure.
    #[serde(rename = "Insecure", default)]
    pub insecure: bool,
    /// PEM CA certificates trusted for the host besides the system roots. The certificates
    /// of every entry for the host are trusted.
    #[serde(rename = "CACert", default)]
    pub ca_cert: Option<String>,
}

/// A registry, without its password.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct RegistryResponse {
    #[serde(rename = "Id")]
    pub id: i64,
    #[serde(rename = "Name")]
    pub name: String,
    /// The host (Docker Hub's aliases written as `docker.io`) and the path prefix, without
    /// a scheme.
    #[serde(rename = "URL")]
    pub url: String,
    /// `null` for a registry reached without credentials.
    #[serde(rename = "Username")]
    pub username: Option<String>,
    #[serde(rename = "Insecure")]
    pub insecure: bool,
    #[serde(rename = "CACert")]
    pub ca_cert: Option<String>,
}

impl From<RegistryRecord> for RegistryResponse {
    fn from(record: RegistryRecord) -> Self {
        Self {
            id: record.id,
            name: record.name,
            url: record.location.to_string(),
            username: record.username,
            insecure: record.insecure,
            ca_cert: record.ca_cert,
        }
    }
}

/// Creates a registry.
#[utoipa::path(
    post,
    path = "/api/registries",
    tag = "registries",
    request_body = RegistryRequest,
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 200, description = "The created registry", body = RegistryResponse),
        (status = 400, description = "Invalid name, URL, credentials or CA certificate", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 409, description = "The name, or the host and path prefix, are taken", body = ErrorBody),
    )
)]
pub async fn create_registry(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<RegistryRequest>,
) -> Result<Json<RegistryResponse>, ApiError> {
    let (fields, password) = check_request(request)?;
    if fields.username.is_some() && password.is_none() {
        return Err(ApiError::BadRequest(
            "Password is required with Username".to_owned(),
        ));
    }

    let record = state
        .store
        .create_registry(&fields, password.as_ref(), &state.credential_key)
        .await?;
    reload(&state).await?;

    log_change(&record, admin.id, "created");
    Ok(Json(record.into()))
}

/// Logs a created or updated entry with everything but its password.
fn log_change(record: &RegistryRecord, admin_id: i64, action: &'static str) {
    tracing::info!(
        registry_id = record.id,
        name = %record.name,
        url = %record.location,
        username = record.username.as_deref(),
        insecure = record.insecure,
        admin_id,
        action,
        "registry saved"
    );
}

/// Lists the registries.
#[utoipa::path(
    get,
    path = "/api/registries",
    tag = "registries",
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 200, description = "The registries, ordered by id", body = [RegistryResponse]),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
    )
)]
pub async fn list_registries(
    AdminUser(_admin): AdminUser,
    State(state): State<AppState>,
) -> Result<Json<Vec<RegistryResponse>>, ApiError> {
    let records = state.store.registries().await?;
    Ok(Json(records.into_iter().map(Into::into).collect()))
}

/// Returns one registry.
#[utoipa::path(
    get,
    path = "/api/registries/{id}",
    tag = "registries",
    params(("id" = i64, Path, description = "Registry id")),
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 200, description = "The registry", body = RegistryResponse),
        (status = 400, description = "Invalid registry id", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 404, description = "No such registry", body = ErrorBody),
    )
)]
pub async fn get_registry(
    AdminUser(_admin): AdminUser,
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
) -> Result<Json<RegistryResponse>, ApiError> {
    let record = state
        .store
        .registry(id)
        .await?
        .ok_or_else(|| not_found(id))?;
    Ok(Json(record.into()))
}

/// Replaces a registry's fields. Without `Password` the stored password stays, which is
/// possible only while the host of the URL and the username stay.
#[utoipa::path(
    put,
    path = "/api/registries/{id}",
    tag = "registries",
    params(("id" = i64, Path, description = "Registry id")),
    request_body = RegistryRequest,
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 200, description = "The updated registry", body = RegistryResponse),
        (status = 400, description = "Invalid field, or a password is required", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 404, description = "No such registry", body = ErrorBody),
        (status = 409, description = "The name, or the host and path prefix, are taken", body = ErrorBody),
    )
)]
pub async fn update_registry(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
    JsonBody(request): JsonBody<RegistryRequest>,
) -> Result<Json<RegistryResponse>, ApiError> {
    let (fields, password) = check_request(request)?;
    let password = match (password, &fields.username) {
        (_, None) => PasswordUpdate::Remove,
        (Some(password), Some(_)) => PasswordUpdate::Set(password),
        (None, Some(_)) => PasswordUpdate::Keep,
    };

    let record = state
        .store
        .update_registry(id, &fields, password, &state.credential_key)
        .await?
        .ok_or_else(|| not_found(id))?;
    reload(&state).await?;

    log_change(&record, admin.id, "updated");
    Ok(Json(record.into()))
}

/// Deletes a registry; its host is reached with the remaining entries, or anonymously.
#[utoipa::path(
    delete,
    path = "/api/registries/{id}",
    tag = "registries",
    params(("id" = i64, Path, description = "Registry id")),
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid registry id", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 404, description = "No such registry", body = ErrorBody),
    )
)]
pub async fn delete_registry(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    PathParams(id): PathParams<i64>,
) -> Result<StatusCode, ApiError> {
    if !state.store.delete_registry(id).await? {
        return Err(not_found(id));
    }
    reload(&state).await?;

    tracing::info!(registry_id = id, admin_id = admin.id, "registry deleted");
    Ok(StatusCode::NO_CONTENT)
}

fn not_found(id: i64) -> ApiError {
    ApiError::NotFound(format!("registry {id} not found"))
}

/// Loads the changed registries into the registry client's credential source.
async fn reload(state: &AppState) -> Result<(), ApiError> {
    state
        .registries
        .reload(&state.store, &state.credential_key)
        .await
        .map_err(ApiError::internal)
}

/// Checks a request and turns it into the stored fields and the password. The messages
/// name the invalid value, except the password, which no message repeats.
fn check_request(request: RegistryRequest) -> Result<(RegistryFields, Option<Secret>), ApiError> {
    let bad = |message: String| ApiError::BadRequest(message);

    let name = request.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(bad(format!(
            "invalid Name {:?}: expected 1 to {MAX_NAME_CHARS} characters without control \
             characters",
            request.name
        )));
    }

    let parsed = RegistryLocation::parse(&request.url).map_err(|error| bad(error.to_string()))?;
    if parsed.plain_http && !request.insecure && !is_loopback_host(parsed.location.host()) {
        return Err(bad(format!(
            "the URL {:?} uses plain HTTP, which needs \"Insecure\": true",
            request.url
        )));
    }

    let username = request.username.filter(|username| !username.is_empty());
    if let Some(username) = &username {
        check_username(username)?;
    }
    let password = request.password.map(check_password).transpose()?;
    if password.is_some() && username.is_none() {
        return Err(bad("Username is required with Password".to_owned()));
    }

    let ca_cert = request.ca_cert.filter(|pem| !pem.trim().is_empty());
    if let Some(pem) = &ca_cert {
        check_ca_cert(pem)?;
    }

    let fields = RegistryFields {
        name: name.to_owned(),
        location: parsed.location,
        username,
        insecure: request.insecure,
        ca_cert,
    };
    Ok((fields, password))
}

fn check_username(username: &str) -> Result<(), ApiError> {
    if username.chars().count() > MAX_USERNAME_CHARS {
        return Err(ApiError::BadRequest(format!(
            "invalid Username: longer than {MAX_USERNAME_CHARS} characters"
        )));
    }
    // RFC 7617 section 2: the user-id of Basic authentication cannot contain a colon.
    if username.contains(':') || username.chars().any(char::is_control) {
        return Err(ApiError::BadRequest(format!(
            "invalid Username {username:?}: it contains ':' or a control character, which \
             HTTP Basic authentication cannot carry"
        )));
    }
    Ok(())
}

/// Checks the password field without ever putting its value into a message.
fn check_password(value: serde_json::Value) -> Result<Secret, ApiError> {
    let serde_json::Value::String(password) = value else {
        return Err(ApiError::BadRequest(
            "invalid Password: expected a string".to_owned(),
        ));
    };
    if password.is_empty() || password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest(format!(
            "invalid Password: expected 1 to {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(Secret::new(password))
}

fn check_ca_cert(pem: &str) -> Result<(), ApiError> {
    let invalid = |reason: &str| ApiError::BadRequest(format!("invalid CACert: {reason}"));
    if pem.len() > MAX_CA_CERT_BYTES {
        return Err(invalid(&format!("longer than {MAX_CA_CERT_BYTES} bytes")));
    }
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        return Err(invalid("expected PEM text with a CERTIFICATE block"));
    }
    match reqwest::Certificate::from_pem_bundle(pem.as_bytes()) {
        Ok(certs) if !certs.is_empty() => Ok(()),
        Ok(_) => Err(invalid("no certificate found in the PEM text")),
        Err(_) => Err(invalid("the PEM text does not parse as certificates")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(body: serde_json::Value) -> RegistryRequest {
        serde_json::from_value(body).unwrap()
    }

    fn message(result: Result<(RegistryFields, Option<Secret>), ApiError>) -> String {
        match result {
            Err(ApiError::BadRequest(message)) => message,
            Err(other) => panic!("expected a 400, got {other:?}"),
            Ok(_) => panic!("expected a 400, got Ok"),
        }
    }

    #[test]
    fn valid_request_gives_fields_and_password() {
        let (fields, password) = check_request(request(json!({
            "Name": " team ",
            "URL": "https://Registry.Example.com:5000/team",
            "Username": "alice",
            "Password": "hunter2",
        })))
        .unwrap();

        assert_eq!(fields.name, "team");
        assert_eq!(
            fields.location.to_string(),
            "registry.example.com:5000/team"
        );
        assert_eq!(fields.username.as_deref(), Some("alice"));
        assert_eq!(password.unwrap().expose(), "hunter2");
        assert!(!fields.insecure);
    }

    #[test]
    fn invalid_values_are_named() {
        let cases = [
            (
                json!({"Name": "", "URL": "r.example.com"}),
                "invalid Name \"\"",
            ),
            (
                json!({"Name": "a", "URL": "ftp://r"}),
                "invalid registry URL \"ftp://r\"",
            ),
            (
                json!({"Name": "a", "URL": "http://r.example.com"}),
                "\"http://r.example.com\" uses plain HTTP",
            ),
            (
                json!({"Name": "a", "URL": "r.example.com", "Username": "a:b", "Password": "p"}),
                "invalid Username \"a:b\"",
            ),
            (
                json!({"Name": "a", "URL": "r.example.com", "Password": "p"}),
                "Username is required",
            ),
            (
                json!({"Name": "a", "URL": "r.example.com", "CACert": "not pem"}),
                "invalid CACert",
            ),
        ];
        for (body, expected) in cases {
            let text = message(check_request(request(body.clone())));
            assert!(text.contains(expected), "{body}: {text}");
        }
    }

    #[test]
    fn plain_http_is_allowed_for_loopback_or_insecure() {
        let loopback = json!({"Name": "a", "URL": "http://127.0.0.1:5000"});
        let insecure = json!({"Name": "a", "URL": "http://r.example.com", "Insecure": true});

        assert!(check_request(request(loopback)).is_ok());
        assert!(check_request(request(insecure)).is_ok());
    }

    #[test]
    fn password_errors_never_repeat_it() {
        let cases = [
            json!(12345678),
            json!(true),
            json!({"value": "secret-value"}),
            json!(""),
        ];
        for password in cases {
            let body =
                json!({"Name": "a", "URL": "r.example.com", "Username": "u", "Password": password});
            let text = message(check_request(request(body)));
            assert!(text.starts_with("invalid Password"), "{text}");
            assert!(!text.contains("12345678"), "{text}");
            assert!(!text.contains("secret-value"), "{text}");
        }
    }
}
