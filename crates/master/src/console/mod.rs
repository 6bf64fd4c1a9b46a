//! The web console: server-rendered pages under `/` for people, beside the API under
//! `/v1` for programs.
//!
//! A page is what the API answers the signed-in user (`api.rs`: in-process calls as that
//! principal), rendered with minijinja from templates built into the binary; a form is
//! an API call. Sessions are signed cookies (`session.rs`); every form carries a CSRF
//! token; every answer carries a Content-Security-Policy that allows this origin's own
//! script and style only. Pages follow the master's change stream through server-sent
//! events (`live.rs`) and replace their live parts without reloading.

mod api;
mod apps;
mod charts;
mod computers;
mod live;
mod profiles;
mod projects;
mod services;
mod session;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use grove_store::Store;
use minijinja::{Environment, Value, context};
use serde::Deserialize;

pub(crate) use api::Acting;
use api::{Api, Refusal};
pub(crate) use session::Sessions;
use session::{COOKIE, Proof};

use crate::Master;
use crate::auth::{self, Principal};

/// Forms are small; a profile in the editor is the largest thing posted.
const MAX_FORM_BYTES: usize = 512 * 1024;

/// What every answer of the console says about where its content may come from: this
/// origin's script and style only, no inline script, no framing.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) struct Console<S> {
    master: Arc<Master<S>>,
    /// The API router, called in process (`api.rs`).
    api: Router,
    templates: Environment<'static>,
}

type Shared<S> = State<Arc<Console<S>>>;

/// The console's routes, sharing the master's state and calling `api`.
pub(crate) fn router<S: Store>(master: Arc<Master<S>>, api: Router) -> Router {
    let console = Arc::new(Console {
        master,
        api,
        templates: templates(),
    });
    Router::new()
        .route("/", get(|| async { Redirect::to("/services") }))
        .route("/login", get(login_page::<S>).post(login::<S>))
        .route("/login/certificate", post(login_certificate::<S>))
        .route("/logout", post(logout::<S>))
        .route("/events", get(live::events::<S>))
        .route("/assets/{file}", get(asset))
        .route(
            "/services",
            get(services::list::<S>).post(services::request::<S>),
        )
        .route("/services/new", get(services::form::<S>))
        .route("/services/{id}", get(services::show::<S>))
        .route("/services/{id}/state", post(services::set_state::<S>))
        .route("/services/{id}/logs", post(services::logs::<S>))
        .route("/computers", get(computers::list::<S>))
        .route("/computers/{reference}", get(computers::show::<S>))
        .route("/apps", get(apps::list::<S>))
        .route("/apps/{name}", get(apps::show::<S>))
        .route("/apps/{name}/nodes", post(apps::nodes::<S>))
        .route("/projects", get(projects::list::<S>))
        .route("/projects/{name}", get(projects::show::<S>))
        .route("/projects/{name}/invoice", get(projects::invoice_csv::<S>))
        .route("/profiles", get(profiles::page::<S>))
        .route("/profiles/check", post(profiles::check::<S>))
        .layer(axum::middleware::map_response(security_headers))
        .layer(DefaultBodyLimit::max(MAX_FORM_BYTES))
        .with_state(console)
}

/// Whether a successful call of `operation` may change what a page shows, so that live
/// pages look again: every write but the frequent ones whose effect no page follows
/// live (usage samples: the chart is read with the page; autonomic probes).
pub(crate) fn shown(operation: grove_api::endpoints::Operation) -> bool {
    use grove_api::endpoints::{Method, Operation};
    operation.method() != Method::Get
        && !matches!(
            operation,
            Operation::ReportUsage | Operation::ReportAppEvents
        )
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

fn templates() -> Environment<'static> {
    let mut env = Environment::new();
    // Names ending in `.html` are escaped as HTML: a title holding `<script>` is text.
    for (name, source) in [
        ("base.html", include_str!("templates/base.html")),
        ("login.html", include_str!("templates/login.html")),
        ("error.html", include_str!("templates/error.html")),
        ("services.html", include_str!("templates/services.html")),
        ("service.html", include_str!("templates/service.html")),
        ("request.html", include_str!("templates/request.html")),
        ("computers.html", include_str!("templates/computers.html")),
        ("computer.html", include_str!("templates/computer.html")),
        ("apps.html", include_str!("templates/apps.html")),
        ("app.html", include_str!("templates/app.html")),
        ("projects.html", include_str!("templates/projects.html")),
        ("project.html", include_str!("templates/project.html")),
        ("profiles.html", include_str!("templates/profiles.html")),
    ] {
        if let Err(e) = env.add_template(name, source) {
            // The templates are part of the binary: a broken one is a bug the unit test
            // `every_template_compiles` catches.
            tracing::error!(template = name, error = %e, "a console template does not compile");
        }
    }
    env
}

/// The assets, built into the binary.
async fn asset(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, kind): (&'static str, &str) = match file.as_str() {
        "console.css" => (include_str!("assets/console.css"), "text/css"),
        "console.js" => (include_str!("assets/console.js"), "text/javascript"),
        "favicon.svg" => (include_str!("assets/favicon.svg"), "image/svg+xml"),
        _ => return (StatusCode::NOT_FOUND, "no such asset").into_response(),
    };
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_str(&format!("{kind}; charset=utf-8"))
                    .unwrap_or(HeaderValue::from_static("text/plain")),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}

/// The user signed in to the console, from a valid session cookie.
pub(crate) struct Viewer {
    pub(crate) principal: Principal,
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) admin: bool,
    /// The token forms send back.
    pub(crate) csrf: String,
    cookie: String,
}

impl Viewer {
    fn context(&self) -> Value {
        context! {
            viewer => context! { name => &self.name, admin => self.admin },
            csrf => &self.csrf,
        }
    }
}

/// A serializable value for a template.
pub(crate) fn ser<T: serde::Serialize>(value: &T) -> Value {
    Value::from(minijinja::value::Serde(value))
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl<S: Store> FromRequestParts<Arc<Console<S>>> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console<S>>,
    ) -> Result<Viewer, Response> {
        let signed_out = || {
            if parts.method == axum::http::Method::GET {
                let next = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                let location = format!("/login?next={}", percent_encode(next));
                Redirect::to(&location).into_response()
            } else {
                (StatusCode::UNAUTHORIZED, "sign in first").into_response()
            }
        };
        let Some(cookie) = parts
            .headers
            .get(header::COOKIE)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| session::cookie(h, COOKIE))
        else {
            return Err(signed_out());
        };
        let Some(claim) = Sessions::read(cookie, now()) else {
            return Err(signed_out());
        };
        let master = &console.master;
        let row = match claim.proof {
            // A token's hash never changes: the cached row will do.
            Proof::Token => master.principal(claim.user).await,
            // A certificate's serial does (renewal, revocation, on any master).
            Proof::Certificate => master.store.principal(claim.user).await.map_err(Into::into),
        };
        let row = match row {
            Ok(Some(row)) => row,
            Ok(None) => return Err(signed_out()),
            Err(e) => {
                return Err(error_page(
                    None,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &e.message,
                ));
            }
        };
        let proved = match claim.proof {
            Proof::Token => row.token_hash.clone(),
            Proof::Certificate => match &row.certificate_serial {
                Some(serial) => serial.as_bytes().to_vec(),
                None => return Err(signed_out()),
            },
        };
        if !master.sessions.verify(&claim, &proved) {
            return Err(signed_out());
        }
        if parts.method != axum::http::Method::GET && !same_origin(&parts.headers) {
            return Err((StatusCode::FORBIDDEN, "a request from another site").into_response());
        }
        let principal = if row.admin {
            Principal::Admin { id: row.id }
        } else {
            Principal::User { id: row.id }
        };
        Ok(Viewer {
            principal,
            id: row.id,
            name: row.name,
            admin: row.admin,
            csrf: master.sessions.csrf(cookie),
            cookie: cookie.to_owned(),
        })
    }
}

impl<S: Store> Console<S> {
    fn api(&self, viewer: &Viewer) -> Api {
        Api::new(self.api.clone(), viewer.principal.clone())
    }

    /// A page: its template with the viewer's name and CSRF token.
    fn page(&self, template: &str, viewer: &Viewer, page: Value) -> Response {
        let nav = match template {
            "computers.html" | "computer.html" => "computers",
            "apps.html" | "app.html" => "apps",
            "projects.html" | "project.html" => "projects",
            "profiles.html" => "profiles",
            _ => "services",
        };
        let context = minijinja::value::merge_maps([context! { nav }, viewer.context(), page]);
        self.render(template, context, StatusCode::OK)
    }

    fn render(&self, template: &str, context: Value, status: StatusCode) -> Response {
        match self
            .templates
            .get_template(template)
            .and_then(|t| t.render(context))
        {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template, error = %e, "rendering a console page");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot render {template}: {e}"),
                )
                    .into_response()
            }
        }
    }

    /// What the API refused, on a page of its own (with the viewer's menu).
    fn refused(&self, viewer: &Viewer, refusal: &Refusal) -> Response {
        let context = minijinja::value::merge_maps([
            viewer.context(),
            context! { status => refusal.status.as_u16(), message => &refusal.message },
        ]);
        self.render("error.html", context, refusal.status)
    }

    /// Checks a form's CSRF token: the refusal when it is not this session's.
    fn check_csrf(&self, viewer: &Viewer, sent: Option<&str>) -> Result<(), Response> {
        match sent {
            Some(sent) if self.master.sessions.csrf_matches(&viewer.cookie, sent) => Ok(()),
            _ => Err(self.refused(
                viewer,
                &Refusal {
                    status: StatusCode::FORBIDDEN,
                    message: "this form is not from this session (its CSRF token is missing or wrong): reload the page".to_owned(),
                },
            )),
        }
    }

    fn secure(&self) -> bool {
        self.master.ca.is_some()
    }
}

/// A page for an error before anyone is known (templates may fail too: plain text then).
fn error_page(_viewer: Option<&Viewer>, status: StatusCode, message: &str) -> Response {
    (status, format!("{}: {message}", status.as_u16())).into_response()
}

/// Whether a state-changing request comes from this origin, as far as the browser says
/// (`Sec-Fetch-Site`, `Origin`): a second guard beside the CSRF token and SameSite.
fn same_origin(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        return matches!(site, "same-origin" | "none");
    }
    match (
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()),
        headers.get(header::HOST).and_then(|v| v.to_str().ok()),
    ) {
        (Some(origin), Some(host)) => origin
            .split_once("://")
            .is_some_and(|(_, rest)| rest == host),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

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
struct LoginQuery {
    next: Option<String>,
}

async fn login_page<S: Store>(
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
struct LoginForm {
    token: String,
    #[serde(default)]
    next: Option<String>,
}

async fn login<S: Store>(
    State(console): Shared<S>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let next = local_path(form.next.as_deref()).to_owned();
    let refuse = |message: &str| {
        console.render(
            "login.html",
            context! { next => &next, certificate => false, error => message },
            StatusCode::UNAUTHORIZED,
        )
    };
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
        Err(e) => return error_page(None, StatusCode::INTERNAL_SERVER_ERROR, &e.message),
    };
    let cookie = console
        .master
        .sessions
        .issue(row.id, now(), Proof::Token, &row.token_hash);
    tracing::info!(user = %row.name, "signed in to the console");
    signed_in(&cookie, &next, console.secure())
}

fn signed_in(cookie: &str, next: &str, secure: bool) -> Response {
    let mut response = Redirect::to(next).into_response();
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(cookie, secure)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// Signs in with the client certificate TLS verified, when it is a user's.
async fn login_certificate<S: Store>(
    State(console): Shared<S>,
    headers: HeaderMap,
    peer: Option<axum::Extension<crate::server::Peer>>,
    axum::Form(form): axum::Form<LoginQuery>,
) -> Response {
    let next = local_path(form.next.as_deref()).to_owned();
    let refuse = |message: &str| {
        console.render(
            "login.html",
            context! { next => &next, certificate => false, error => message },
            StatusCode::UNAUTHORIZED,
        )
    };
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
        Err(e) => return error_page(None, StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
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
    signed_in(&cookie, &next, console.secure())
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

async fn logout<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    axum::Form(form): axum::Form<CsrfForm>,
) -> Response {
    if let Err(refused) = console.check_csrf(&viewer, form.csrf.as_deref()) {
        return refused;
    }
    let mut response = Redirect::to("/login").into_response();
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie("", console.secure())) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        let env = templates();
        for name in [
            "base.html",
            "login.html",
            "error.html",
            "services.html",
            "service.html",
            "request.html",
            "computers.html",
            "computer.html",
            "apps.html",
            "app.html",
            "projects.html",
            "project.html",
            "profiles.html",
        ] {
            assert!(env.get_template(name).is_ok(), "{name}");
        }
    }

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

    #[test]
    fn requests_from_other_sites_are_told_apart() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, HeaderValue::from_static(v));
            }
            h
        };
        assert!(same_origin(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&headers(&[("sec-fetch-site", "cross-site")])));
        assert!(same_origin(&headers(&[
            ("origin", "http://127.0.0.1:8080"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("origin", "http://evil.example"),
            ("host", "127.0.0.1:8080")
        ])));
        assert!(same_origin(&headers(&[])));
    }
}
