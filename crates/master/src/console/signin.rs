//! Signing in and out: a user token typed in the form, or the client certificate the
//! browser presented over TLS; either gives a session cookie (`session.rs`).

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use grove_store::Store;
use minijinja::context;
use serde::Deserialize;

use super::session::{self, Proof, same_origin};
use super::{Console, Shared, Viewer, error_page, now};
use crate::auth::{self, Principal};

/// Where to go after signing in: a path of this site only.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(path) if path.starts_with('/') && !path.starts_with("//") && !path.contains('\\') => {
            path
        }
        _ => "/services",
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
}

pub(crate) async fn page<S: Store>(
    State(console): Shared<S>,
    Query(query): Query<LoginQuery>,
    peer: Option<axum::Extension<crate::server::Peer>>,
) -> Response {
    let certificate = peer.is_some_and(|axum::Extension(crate::server::Peer(p))| p.is_some());
    console.render(
        "login.html",
        context! { next => local_path(query.next.as_deref()), certificate, error => None::<String> },
        StatusCode::OK,
    )
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

pub(crate) async fn token<S: Store>(
    State(console): Shared<S>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let next = local_path(form.next.as_deref()).to_owned();
    let refuse = |message: &str| refused(&console, &next, message);
    if !same_origin(&headers) {
        return refuse("a sign-in from another site");
    }
    let Some(parts) = auth::parse_token(form.token.trim()).filter(|p| p.kind == "u") else {
        return refuse("this is not a user token (g1.u.…)");
    };
    let row = match console.master.principal(parts.id).await {
        Ok(Some(row))
            if auth::constant_time_eq(&row.token_hash, &auth::hash_secret(parts.secret)) =>
        {
            row
        }
        Ok(_) => return refuse("invalid token"),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.message),
    };
    let cookie = console
        .master
        .sessions
        .issue(row.id, now(), Proof::Token, &row.token_hash);
    tracing::info!(user = %row.name, "signed in to the console");
    with_cookie(&next, &cookie, console.secure())
}

/// The sign-in page again, saying why not.
fn refused<S: Store>(console: &Console<S>, next: &str, message: &str) -> Response {
    console.render(
        "login.html",
        context! { next, certificate => false, error => message },
        StatusCode::UNAUTHORIZED,
    )
}

/// A redirection to `to` that sets the session cookie (an empty value ends it).
fn with_cookie(to: &str, cookie: &str, secure: bool) -> Response {
    let mut response = Redirect::to(to).into_response();
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(cookie, secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Signs in with the client certificate TLS verified, when it is a user's.
pub(crate) async fn certificate<S: Store>(
    State(console): Shared<S>,
    headers: HeaderMap,
    peer: Option<axum::Extension<crate::server::Peer>>,
    axum::Form(form): axum::Form<LoginQuery>,
) -> Response {
    let next = local_path(form.next.as_deref()).to_owned();
    let refuse = |message: &str| refused(&console, &next, message);
    if !same_origin(&headers) {
        return refuse("a sign-in from another site");
    }
    let Some(axum::Extension(crate::server::Peer(Some(presented)))) = peer else {
        return refuse("the browser presented no client certificate");
    };
    let id = match crate::joining::by_certificate(&console.master, &presented).await {
        Ok(crate::routes::Caller(Principal::Admin { id } | Principal::User { id })) => id,
        Ok(_) => return refuse("this certificate is not a user's"),
        Err(e) => return refuse(&e.message),
    };
    let row = match console.master.store.principal(id).await {
        Ok(Some(row)) => row,
        Ok(None) => return refuse("no such user"),
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    };
    let Some(serial) = &row.certificate_serial else {
        return refuse("this certificate is no longer valid");
    };
    let cookie =
        console
            .master
            .sessions
            .issue(row.id, now(), Proof::Certificate, serial.as_bytes());
    tracing::info!(user = %row.name, "signed in to the console with a certificate");
    with_cookie(&next, &cookie, console.secure())
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

pub(crate) async fn logout<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Err(refused) = console.check_csrf(&viewer, form.csrf.as_deref()) {
        return refused;
    }
    with_cookie("/login", "", console.secure())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        for (next, expected) in [
            (Some("/services/3"), "/services/3"),
            (Some("//evil.example/x"), "/services"),
            (Some("https://evil.example/"), "/services"),
            (Some("/\\evil.example"), "/services"),
            (None, "/services"),
        ] {
            assert_eq!(local_path(next), expected, "{next:?}");
        }
    }
}
