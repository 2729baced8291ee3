//! The access rule shared by every route under `/api/docker/{id}`: the environment must
//! exist, and the caller must be an admin or hold a grant for it.

use crate::server::AppState;
use crate::server::error::ApiError;
use crate::server::store::{Environment, User};

/// Loads environment `id` for `user`: 404 when it does not exist, 403 when the user is a
/// standard user without a grant for it.
///
/// An unknown id is a 404 even for a standard user, as it was for the status endpoint
/// before this module. Ids are sequential, so hiding which ones exist would gain little.
pub async fn accessible_environment(
    state: &AppState,
    user: &User,
    id: i64,
) -> Result<Environment, ApiError> {
    let environment = state
        .store
        .environment(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("environment {id} not found")))?;

    let granted = user.is_admin() || state.store.has_environment_access(id, user.id).await?;
    if !granted {
        return Err(ApiError::Forbidden(format!(
            "no access to environment {id}"
        )));
    }
    Ok(environment)
}
