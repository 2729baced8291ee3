//! `POST /api/auth`: exchanges a username and password for a JWT.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::extract::JsonBody;
use crate::server::AppState;
use crate::server::auth::password;
use crate::server::error::{ApiError, ErrorBody};

/// Username and password to log in with.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "PascalCase")]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// A JWT to send as `Authorization: Bearer <jwt>`.
#[derive(Deserialize, Serialize, ToSchema)]
pub struct LoginResponse {
    pub jwt: String,
}

/// Logs in and returns a JWT.
#[utoipa::path(
    post,
    path = "/api/auth",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A JWT for the user", body = LoginResponse),
        (status = 400, description = "Malformed request body", body = ErrorBody),
        (status = 401, description = "Unknown username or wrong password", body = ErrorBody),
    )
)]
pub async fn login(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let found = state
        .store
        .user_with_password_hash(&request.username)
        .await?;
    let (user, hash) = match found {
        Some((user, hash)) => (Some(user), Some(hash)),
        None => (None, None),
    };

    // Verified even for an unknown user, so the response time does not reveal which
    // usernames exist.
    let password_matches = password::verify_password(request.password, hash).await;
    let Some(user) = user.filter(|_| password_matches) else {
        tracing::info!(username = %request.username, "login failed");
        return Err(ApiError::Unauthorized);
    };

    let jwt = state.jwt.issue(user.id).map_err(ApiError::internal)?;
    tracing::debug!(user_id = user.id, "login succeeded");
    Ok(Json(LoginResponse { jwt }))
}
