//! Axum's JSON, path and query extractors with their rejections turned into [`ApiError`],
//! so a malformed request gets a 400 with a JSON body like every other error.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;

use crate::server::error::ApiError;

/// A JSON request body; a missing content type, invalid JSON or a wrong field is a 400.
pub struct JsonBody<T>(pub T);

/// Path parameters; a value that does not parse into `T` is a 400.
pub struct PathParams<T>(pub T);

/// Query parameters; a value that does not parse into `T` is a 400.
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    axum::Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let axum::Json(value) = axum::Json::<T>::from_request(request, state)
            .await
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        Ok(Self(value))
    }
}

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Path(value) = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        Ok(Self(value))
    }
}

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    axum::extract::Query<T>: FromRequestParts<S, Rejection = QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state)
                .await
                .map_err(|rejection| ApiError::BadRequest(rejection.body_text()))?;
        Ok(Self(value))
    }
}
