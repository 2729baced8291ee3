//! The error every handler and extractor returns, and its HTTP response.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::store::StoreError;

/// Body of every error response.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// Description of the failure, for a person to read. For server-side failures it is
    /// generic, and the cause is only in the server log.
    pub message: String,
}

/// A request that failed, with the status code it maps to.
///
/// Client errors carry a message that goes to the client as is, so it must name only what
/// the client sent. `Internal` carries the cause, which is logged and never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),

    #[error("authentication required")]
    Unauthorized,

    #[error("{0}")]
    Forbidden(String),

    #[error("{0}")]
    NotFound(String),

    #[error("{0}")]
    Conflict(String),

    /// A container engine failed; the message is generic and the cause is logged where
    /// the failure was caught.
    #[error("{0}")]
    BadGateway(String),

    #[error("internal server error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(cause.into())
    }

    fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::BadGateway(_) => StatusCode::BAD_GATEWAY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Duplicate { .. } => Self::Conflict(error.to_string()),
            StoreError::NotFound { .. } => Self::NotFound(error.to_string()),
            StoreError::PasswordRequired { .. } => Self::BadRequest(error.to_string()),
            StoreError::Open { .. }
            | StoreError::Migrate(_)
            | StoreError::Query(_)
            | StoreError::Corrupt { .. }
            | StoreError::Seal { .. } => Self::internal(error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(cause) = &self {
            // The one place an internal failure is logged; handlers only propagate it.
            tracing::error!(error = &**cause as &dyn std::error::Error, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), message = %self, "request rejected");
        }

        let body = ErrorBody {
            message: self.to_string(),
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
