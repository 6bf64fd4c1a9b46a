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
mod signin;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use grove_store::Store;
use minijinja::{Environment, Value, context};

pub(crate) use api::Acting;
use api::{Api, Refusal};
pub(crate) use session::Sessions;
use session::{COOKIE, Proof};

use crate::Master;
use crate::auth::Principal;

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
        .route("/login", get(signin::page::<S>).post(signin::token::<S>))
        .route("/login/certificate", post(signin::certificate::<S>))
        .route("/logout", post(signin::logout::<S>))
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
                return Err(error_page(StatusCode::INTERNAL_SERVER_ERROR, &e.message));
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
        if parts.method != axum::http::Method::GET && !session::same_origin(&parts.headers) {
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

    /// What the API answers the viewer at `path`, or the page saying why not.
    async fn read<T: serde::de::DeserializeOwned>(
        &self,
        viewer: &Viewer,
        path: &str,
    ) -> Result<T, Response> {
        self.api(viewer)
            .get(path)
            .await
            .map_err(|refusal| self.refused(viewer, &refusal))
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
fn error_page(status: StatusCode, message: &str) -> Response {
    (status, format!("{}: {message}", status.as_u16())).into_response()
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
}
