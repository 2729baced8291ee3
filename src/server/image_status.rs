//! The seam between the HTTP layer and the status computation: the API checks the request
//! and the caller's access, then calls an [`ImageStatusSource`] for the status.

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::store::Environment;

/// Whether the registry has a newer image for a container's reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ImageStatus {
    /// The registry's digest for the tag is not among the image's digests.
    Outdated,
    /// The registry's digest for the tag is among the image's digests.
    Updated,
    /// No check applies: the container is gone, the reference is pinned by digest, or the
    /// image was never pushed or pulled.
    Skipped,
    /// The check is still running in the background; a later request returns its result.
    Processing,
    /// A Swarm service whose tasks are still being created, or which has no running task.
    Preparing,
    /// The engine or the registry failed.
    Error,
}

/// The status of one container and an optional message that the API sends to the client
/// as is, so it must not carry registry URLs, credentials or other details of a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReply {
    pub status: ImageStatus,
    pub message: Option<String>,
}

impl StatusReply {
    pub fn new(status: ImageStatus) -> Self {
        Self {
            status,
            message: None,
        }
    }
}

/// One status request, after the API checked the container id and the caller's access.
#[derive(Clone, Copy, Debug)]
pub struct StatusRequest<'a> {
    pub environment: &'a Environment,
    /// Swarm node to ask, from the `nodeName` query parameter as the client sent it. Never
    /// empty, and otherwise unchecked, so the source must treat it as untrusted input.
    pub node_name: Option<&'a str>,
    /// Container id or name: ASCII letters, digits, `_`, `.` and `-`, starting with a letter
    /// or a digit.
    pub container_id: &'a str,
    /// Bypass cached results and recompute against the registry.
    pub force: bool,
}

/// Cause of a failed status computation. It goes to the server log, never to the client.
pub type StatusFailure = Box<dyn std::error::Error + Send + Sync>;

/// Computes the image status of containers. The server shares one across all requests.
///
/// Failures at the engine or the registry are part of the result, not HTTP errors: return
/// `Ok` with [`ImageStatus::Skipped`] or [`ImageStatus::Error`], or return `Err` with the
/// cause. On `Err` the API logs the cause with the environment and container ids and
/// responds 200 with status `error` and a generic message. The cause's `Display` should
/// name the reference and the registry, since the API does not know them.
pub trait ImageStatusSource: Send + Sync {
    fn image_status<'a>(
        &'a self,
        request: StatusRequest<'a>,
    ) -> BoxFuture<'a, Result<StatusReply, StatusFailure>>;
}

/// Source for a server built without a status checker: every request fails, so the API
/// returns `error` and logs why.
// TODO: replace with the engine and registry checker once the status module provides one.
#[derive(Clone, Copy, Debug, Default)]
pub struct UnavailableStatusSource;

impl ImageStatusSource for UnavailableStatusSource {
    fn image_status<'a>(
        &'a self,
        _request: StatusRequest<'a>,
    ) -> BoxFuture<'a, Result<StatusReply, StatusFailure>> {
        Box::pin(async { Err("this build has no image status checker".into()) })
    }
}
