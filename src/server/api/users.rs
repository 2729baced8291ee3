//! Users: creating the first admin, creating users, and issuing API keys.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::{JsonBody, PathParams};
use crate::server::AppState;
use crate::server::auth::{AdminUser, AuthUser, api_key, password};
use crate::server::error::{ApiError, ErrorBody};
use crate::server::store::{Role, User};

/// Maximum length of a username, in characters.
const MAX_USERNAME_CHARS: usize = 64;
/// Minimum length of a password, in characters.
const MIN_PASSWORD_CHARS: usize = 8;
/// Maximum length of a password, in bytes; it bounds the work of one hash.
const MAX_PASSWORD_BYTES: usize = 1024;
/// Maximum length of an API key description, in characters.
const MAX_DESCRIPTION_CHARS: usize = 256;

/// Username and password of the first admin.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct AdminInitRequest {
    pub username: String,
    pub password: String,
}

/// A new user.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct CreateUserRequest {
    pub username: String,
    pub password: String,
    pub role: Role,
}

/// A user, without credentials.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct UserResponse {
    pub id: i64,
    pub username: String,
    pub role: Role,
}

impl From<User> for UserResponse {
    fn from(user: User) -> Self {
        Self {
            id: user.id,
            username: user.username,
            role: user.role,
        }
    }
}

/// A new API key.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct CreateApiKeyRequest {
    /// Purpose of the key, shown to people who manage keys.
    #[serde(default)]
    pub description: String,
}

/// A created API key. `RawAPIKey` is shown only in this response; the server keeps a hash.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct ApiKeyResponse {
    #[serde(rename = "Id")]
    pub id: i64,
    #[serde(rename = "RawAPIKey")]
    pub raw_api_key: String,
}

/// Creates the first admin. Only possible while no admin exists.
#[utoipa::path(
    post,
    path = "/api/users/admin/init",
    tag = "users",
    request_body = AdminInitRequest,
    responses(
        (status = 200, description = "The created admin", body = UserResponse),
        (status = 400, description = "Invalid username or password", body = ErrorBody),
        (status = 409, description = "An admin already exists", body = ErrorBody),
    )
)]
pub async fn init_admin(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<AdminInitRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    check_username(&request.username)?;
    check_password(&request.password)?;

    let hash = password::hash_password(request.password)
        .await
        .map_err(ApiError::internal)?;
    let admin = state
        .store
        .create_first_admin(&request.username, &hash)
        .await?
        .ok_or_else(|| ApiError::Conflict("an admin already exists".to_owned()))?;

    tracing::info!(user_id = admin.id, username = %admin.username, "first admin created");
    Ok(Json(admin.into()))
}

/// Creates a user.
#[utoipa::path(
    post,
    path = "/api/users",
    tag = "users",
    request_body = CreateUserRequest,
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 200, description = "The created user", body = UserResponse),
        (status = 400, description = "Invalid username, password or role", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is not an admin", body = ErrorBody),
        (status = 409, description = "The username is taken", body = ErrorBody),
    )
)]
pub async fn create_user(
    AdminUser(admin): AdminUser,
    State(state): State<AppState>,
    JsonBody(request): JsonBody<CreateUserRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    check_username(&request.username)?;
    check_password(&request.password)?;

    let hash = password::hash_password(request.password)
        .await
        .map_err(ApiError::internal)?;
    let user = state
        .store
        .create_user(&request.username, &hash, request.role)
        .await?;

    tracing::info!(
        user_id = user.id,
        username = %user.username,
        role = ?user.role,
        admin_id = admin.id,
        "user created"
    );
    Ok(Json(user.into()))
}

/// Creates an API key for a user. Users create keys for themselves, admins for anyone.
#[utoipa::path(
    post,
    path = "/api/users/{id}/tokens",
    tag = "users",
    params(("id" = i64, Path, description = "User id")),
    request_body = CreateApiKeyRequest,
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 200, description = "The key; the raw key is not shown again", body = ApiKeyResponse),
        (status = 400, description = "Invalid user id or description", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "The caller is neither that user nor an admin", body = ErrorBody),
        (status = 404, description = "No such user", body = ErrorBody),
    )
)]
pub async fn create_api_key(
    AuthUser(caller): AuthUser,
    State(state): State<AppState>,
    PathParams(user_id): PathParams<i64>,
    JsonBody(request): JsonBody<CreateApiKeyRequest>,
) -> Result<Json<ApiKeyResponse>, ApiError> {
    if caller.id != user_id && !caller.is_admin() {
        return Err(ApiError::Forbidden(
            "only admins create API keys for other users".to_owned(),
        ));
    }
    if request.description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::BadRequest(format!(
            "the description is longer than {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    if state.store.user(user_id).await?.is_none() {
        return Err(ApiError::NotFound(format!("user {user_id} not found")));
    }

    let raw_key = api_key::generate().map_err(ApiError::internal)?;
    let id = state
        .store
        .create_api_key(user_id, &api_key::hash(&raw_key), &request.description)
        .await?;

    tracing::info!(
        key_id = id,
        user_id,
        caller_id = caller.id,
        "API key created"
    );
    Ok(Json(ApiKeyResponse {
        id,
        raw_api_key: raw_key,
    }))
}

fn check_username(username: &str) -> Result<(), ApiError> {
    let length = username.chars().count();
    if length == 0 || length > MAX_USERNAME_CHARS {
        return Err(ApiError::BadRequest(format!(
            "invalid username: expected 1 to {MAX_USERNAME_CHARS} characters"
        )));
    }
    if username
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(ApiError::BadRequest(
            "invalid username: it contains whitespace or a control character".to_owned(),
        ));
    }
    Ok(())
}

fn check_password(password: &str) -> Result<(), ApiError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::BadRequest(format!(
            "invalid password: expected at least {MIN_PASSWORD_CHARS} characters \
             and at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}
