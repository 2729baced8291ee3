//! `GET /api/docker/{id}/containers`: the containers of one environment, read-only, with
//! the same access rules as the status endpoint.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::access::accessible_environment;
use super::extract::PathParams;
use crate::server::AppState;
use crate::server::auth::AuthUser;
use crate::server::containers::ListedContainer;
use crate::server::error::{ApiError, ErrorBody};

/// One container of an environment.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
pub struct ContainerResponse {
    /// Full container id, to use in the status endpoint's path.
    #[serde(rename = "Id")]
    pub id: String,
    #[serde(rename = "Name")]
    pub name: String,
    /// The reference the container was created from.
    #[serde(rename = "Image")]
    pub image: String,
    /// `running`, `exited`, `created`, …
    #[serde(rename = "State")]
    pub state: String,
    /// Swarm node that runs the container, to send as `nodeName`; null outside Swarm.
    #[serde(rename = "Node")]
    pub node: Option<String>,
}

impl From<ListedContainer> for ContainerResponse {
    fn from(container: ListedContainer) -> Self {
        Self {
            id: container.id,
            name: container.name,
            image: container.image,
            state: container.state,
            node: container.node,
        }
    }
}

/// Lists every container of an environment, stopped ones included, ordered by name.
///
/// Read-only: it lists the engine's containers and sends no request to a registry. The
/// status endpoint returns each container's status.
#[utoipa::path(
    get,
    path = "/api/docker/{id}/containers",
    tag = "docker",
    params(("id" = i64, Path, description = "Environment id")),
    security(("jwt" = []), ("ApiKeyAuth" = [])),
    responses(
        (status = 200, description = "The containers, ordered by name", body = [ContainerResponse]),
        (status = 400, description = "Invalid environment id", body = ErrorBody),
        (status = 401, description = "Not authenticated", body = ErrorBody),
        (status = 403, description = "No access to the environment", body = ErrorBody),
        (status = 404, description = "No such environment", body = ErrorBody),
        (status = 502, description = "The engine failed; the cause is in the server log", body = ErrorBody),
    )
)]
pub async fn list_containers(
    AuthUser(user): AuthUser,
    State(state): State<AppState>,
    PathParams(environment_id): PathParams<i64>,
) -> Result<Json<Vec<ContainerResponse>>, ApiError> {
    let environment = accessible_environment(&state, &user, environment_id).await?;

    match state.image_status.list_containers(&environment).await {
        Ok(containers) => Ok(Json(containers.into_iter().map(Into::into).collect())),
        Err(cause) => {
            tracing::warn!(
                environment_id,
                error = &*cause as &dyn std::error::Error,
                "container listing failed"
            );
            Err(ApiError::BadGateway(format!(
                "failed to list the containers of environment {environment_id}; the cause is \
                 in the server log"
            )))
        }
    }
}
