//! API errors: a status, a stable code and a message, sent as JSON.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use grove_api::{ErrorBody, ErrorDetail, codes};
use grove_store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, codes::UNAUTHORIZED, message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, codes::FORBIDDEN, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match &e {
            StoreError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, codes::NOT_FOUND, e.to_string())
            }
            StoreError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, codes::CONFLICT, e.to_string())
            }
            StoreError::NoCapacity(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::NO_CAPACITY,
                e.to_string(),
            ),
            StoreError::QuotaExceeded { .. } => {
                ApiError::new(StatusCode::FORBIDDEN, codes::QUOTA_EXCEEDED, e.to_string())
            }
            StoreError::Invalid(_) => ApiError::bad_request(e.to_string()),
            StoreError::Unauthorized(message) => ApiError::unauthorized(message),
            StoreError::Database(_)
            | StoreError::Open { .. }
            | StoreError::BadLocation(_)
            | StoreError::Closed
            | StoreError::Newer { .. } => {
                tracing::error!(error = %e, "store failure");
                ApiError::internal("the store failed; see the master's log")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        // An answer given before the body was read also says `Connection: close`: the
        // server adds it (server.rs), whatever the answer.
        (self.status, axum::Json(body)).into_response()
    }
}
