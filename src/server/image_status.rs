//! The seam between the HTTP layer and the status computation: the API checks the request
//! and the caller's access, then calls an [`ImageStatusSource`] for the status.

use std::borrow::Cow;
use std::time::SystemTime;

use futures::future::BoxFuture;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use super::containers::ListedContainer;
use super::store::Environment;

/// Status of one container, as the status rules decide it.
pub use crate::rules::Status;

/// Every status, in the order the OpenAPI document lists them.
const ALL_STATUSES: [Status; 6] = [
    Status::Outdated,
    Status::Updated,
    Status::Skipped,
    Status::Processing,
    Status::Preparing,
    Status::Error,
];

// Fails to compile when `Status` gains a variant, so that `ALL_STATUSES` gets it too.
const _: fn(Status) = |status| match status {
    Status::Outdated
    | Status::Updated
    | Status::Skipped
    | Status::Processing
    | Status::Preparing
    | Status::Error => {}
};

impl PartialSchema for Status {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "Whether the registry has a newer image for the container's reference",
            ))
            .enum_values(Some(ALL_STATUSES.map(Status::as_str)))
            .into()
    }
}

impl ToSchema for Status {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("ImageStatus")
    }
}

/// The status of one container and an optional message that the API sends to the client
/// as is, so it must not carry registry URLs, credentials or other details of a failure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReply {
    pub status: Status,
    pub message: Option<String>,
    /// The reference, digests and time of the check, for the response's detail fields.
    pub detail: CheckDetail,
}

impl StatusReply {
    pub fn new(status: Status) -> Self {
        Self {
            status,
            message: None,
            detail: CheckDetail::default(),
        }
    }
}

/// The reference and digests a check compared, and the time it decided. The API sends
/// the reference and the time to every caller with access, and the digests to admins only,
/// except for `error`, where it sends only the time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckDetail {
    /// The normalised reference that was checked.
    pub reference: Option<String>,
    /// When the status was decided; `None` while the check runs.
    pub checked_at: Option<SystemTime>,
    /// The manifest digests the engine recorded for the checked repository.
    pub local_digests: Vec<String>,
    /// The registry's digest for the tag, when the registry returned one.
    pub remote_digest: Option<String>,
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

/// Cause of a failed status computation or container listing. It goes to the server log,
/// never to the client.
pub type StatusFailure = Box<dyn std::error::Error + Send + Sync>;

/// Computes the image status of containers, and lists the containers of an environment.
/// The server shares one across all requests.
///
/// Failures at the engine or the registry are part of a status, not HTTP errors: return
/// `Ok` with [`Status::Skipped`] or [`Status::Error`], or return `Err` with the
/// cause. On `Err` the API logs the cause with the environment and container ids and
/// responds 200 with status `error` and a generic message. The cause's `Display` should
/// name the reference and the registry, since the API does not know them.
pub trait ImageStatusSource: Send + Sync {
    fn image_status<'a>(
        &'a self,
        request: StatusRequest<'a>,
    ) -> BoxFuture<'a, Result<StatusReply, StatusFailure>>;

    /// Lists every container of the environment, stopped ones included, as `docker ps -a`
    /// does. On `Err` the API logs the cause and responds 502 with a generic message.
    fn list_containers<'a>(
        &'a self,
        environment: &'a Environment,
    ) -> BoxFuture<'a, Result<Vec<ListedContainer>, StatusFailure>>;
}
