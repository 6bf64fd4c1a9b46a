//! The console calls the API in process, as the signed-in principal: every page shows
//! what `/v1` answers that principal, and every form is a `/v1` call, so the console
//! cannot see or do more than the API lets it (one home for the rules: the handlers).

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use grove_api::ErrorBody;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::auth::Principal;

/// The principal a request made by the console acts as. Only the console puts it on a
/// request; nothing from the wire can.
#[derive(Debug, Clone)]
pub(crate) struct Acting(pub(crate) Principal);

/// What an API call answered when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

/// The API, as one principal.
#[derive(Clone)]
pub(crate) struct Api {
    router: Router,
    principal: Principal,
}

impl Api {
    pub(crate) fn new(router: Router, principal: Principal) -> Api {
        Api { router, principal }
    }

    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Refusal> {
        let body = self.call(Method::GET, path, None).await?;
        decode(path, &body)
    }

    /// Sends `body` as JSON and reads the answer (`()` for one without a body).
    pub(crate) async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, Refusal> {
        let json = serde_json::to_vec(body).map_err(|e| Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("cannot encode the request to {path}: {e}"),
        })?;
        let answer = self.call(method, path, Some(json)).await?;
        if answer.is_empty() {
            return decode(path, b"null");
        }
        decode(path, &answer)
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<axum::body::Bytes, Refusal> {
        let internal = |message: String| Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message,
        };
        let mut request = Request::builder().method(method).uri(path);
        if json.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let mut request = request
            .body(json.map_or_else(Body::empty, Body::from))
            .map_err(|e| internal(format!("bad request to {path}: {e}")))?;
        request
            .extensions_mut()
            .insert(Acting(self.principal.clone()));
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .map_err(|e| internal(format!("reading the answer of {path}: {e}")))?;
        if status.is_success() {
            return Ok(body);
        }
        let message = serde_json::from_slice::<ErrorBody>(&body)
            .map(|b| b.error.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).into_owned());
        Err(Refusal { status, message })
    }
}

fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| Refusal {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("the answer of {path} is not understood: {e}"),
    })
}
