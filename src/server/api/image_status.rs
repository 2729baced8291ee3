//! `GET /api/docker/{id}/containers/{containerId}/image_status`: the image status of one
//! container. Request problems are HTTP errors; everything that goes wrong at the engine
//! or the registry is a 200 with status `skipped` or `error`.

use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::access::accessible_environment;
use super::extract::{PathParams, QueryParams};
use crate::server::AppState;
use crate::server::auth::AuthUser;
use crate::server::error::{ApiError, ErrorBody};
use crate::server::image_status::{Status, StatusReply, StatusRequest};

/// Message sent with status `error` when the source failed; the cause goes to the log.
const GENERIC_FAILURE_MESSAGE: &str = "unable to determine image status";

/// Query parameters of the status request.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// Swarm node to ask, for an environment that is a Swarm cluster.
    #[serde(rename = "nodeName")]
    #[param(rename = "nodeName")]
    pub node_name: Option<String>,
    /// Bypass the server's caches and recompute against the registry. Accepts the forms
    /// Go's `strconv.ParseBool` does: `1`, `t`, `true`, `0`, `f`, `false` in any case
    /// the reference client sends; an empty value means false.
    #[serde(default, deserialize_with = "parse_flag")]
    #[param(value_type = Option<bool>)]
    pub force: Option<bool>,
}

/// Reads a boolean query flag as Go's `strconv.ParseBool` does, so that clients written
/// against the reference endpoint (`force=1`, `force=TRUE`) work unchanged.
fn parse_flag<'de, D>(deserializer: D) -> Result<Option<bool>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let text: Option<String> = Option::deserialize(deserializer)?;
    let Some(text) = text else {
        return Ok(None);
    };
    match text.as_str() {
        "" => Ok(None),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(Some(true)),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(Some(false)),
        other => Err(serde::de::Error::custom(format!(
            "invalid boolean {other:?}: expected true or false (or 1, 0, t, f)"
        ))),
    }
}

/// Image status of a container.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct StatusResponse {
    #[serde(rename = "Status")]
    pub status: Status,
    /// Detail for a person to read; generic when the status is `error`.
    #[serde(rename = "Message", skip_serializing_if = "Option::is_none", default)]
    pub message: Option<String>,
    /// The normalised reference that was checked, when the check got that far; absent for
    /// `error`.
    #[serde(rename = "Reference", skip_serializing_if = "Option::is_none", default)]
    pub reference: Option<String>,
    /// When the status was decided (RFC 3339, UTC); absent while the check runs.
    #[serde(rename = "CheckedAt", skip_serializing_if = "Option::is_none", default)]
    #[schema(format = DateTime)]
    pub checked_at: Option<String>,
    /// Admins only: the manifest digests the engine recorded for the checked repository.
    #[serde(
        rename = "LocalDigests",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub local_digests: Option<Vec<String>>,
    /// Admins only: the registry's digest for the tag, when the registry returned one.
    #[serde(
        rename = "RemoteDigest",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub remote_digest: Option<String>,
}

impl StatusResponse {
    /// Builds the response body; the digests are included only for an admin.
    ///
    /// An `error` carries neither the reference nor the digests, because the reference
    /// names the registry that failed; the server log has them with the cause.
    fn new(reply: StatusReply, for_admin: bool) -> Self {
        let mut detail = reply.detail;
        if reply.status == Status::Error {
            detail.reference = None;
            detail.local_digests.clear();
            detail.remote_digest = None;
        }
        let (local_digests, remote_digest) = if for_admin {
            let local = Some(detail.local_digests).filter(|digests| !digests.is_empty());
            (local, detail.remote_digest)
        } else {
            (None, None)
        };
        Self {
            status: reply.status,
            message: reply.message,
            reference: detail.reference,
            checked_at: detail.checked_at.map(rfc3339),
            local_digests,
            remote_digest,
        }
    }
}

fn rfc3339(time: SystemTime) -> String {
    DateTime::<Utc>::from(time).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Tells whether the registry has a newer image for the container's reference.
///
/// Read-only: nothing is pulled or recreated.
#[utoipa::path(
    get,
    path = "/api/docker/{id}/containers/{containerId}/image_status",
    tag = "docker",
    params(
        ("id" = i64, Path, description = "Environment id"),
        ("containerId" = String, Path, description = "Container id or name"),
        StatusQuery,
    ),
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 200, description = "The status, also `skipped` or `error` when the engine or the registry failed; the digests for admins only", body = StatusResponse),
        (status = 400, description = "Missing or invalid container id", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "No access to the environment", body = ErrorBody),
        (status = 404, description = "No such environment", body = ErrorBody),
    )
)]
pub async fn image_status(
    AuthUser(user): AuthUser,
    State(state): State<AppState>,
    PathParams((environment_id, container_id)): PathParams<(i64, String)>,
    QueryParams(query): QueryParams<StatusQuery>,
) -> Result<Json<StatusResponse>, ApiError> {
    if !crate::engine::is_valid_container_id(&container_id) {
        return Err(ApiError::BadRequest(format!(
            "invalid container id {container_id:?}: expected a container id or name"
        )));
    }

    let environment = accessible_environment(&state, &user, environment_id).await?;

    let node_name = query.node_name.as_deref().filter(|name| !name.is_empty());
    let request = StatusRequest {
        environment: &environment,
        node_name,
        container_id: &container_id,
        force: query.force.unwrap_or(false),
    };

    let reply = match state.image_status.image_status(request).await {
        Ok(reply) => reply,
        Err(cause) => {
            tracing::warn!(
                environment_id,
                container_id = %container_id,
                node_name,
                error = &*cause as &dyn std::error::Error,
                "image status check failed"
            );
            StatusReply {
                message: Some(GENERIC_FAILURE_MESSAGE.to_owned()),
                ..StatusReply::new(Status::Error)
            }
        }
    };
    Ok(Json(StatusResponse::new(reply, user.is_admin())))
}
