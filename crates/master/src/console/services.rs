//! Services: the list (filters, pages), a service's page (parameters, connection
//! parameters, states with buttons, error, usage, children, actions), the request form,
//! and changing a service's requested state.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use grove_api as api;
use grove_store::Store;
use minijinja::{Value, context};
use serde::{Deserialize, Serialize};

use super::api::Refusal;
use super::charts::{self, Point};
use super::{Console, Shared, Viewer};

/// Rows on a page of the list.
pub(crate) const PAGE: usize = 50;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filters {
    /// Words looked for in the title and the release.
    #[serde(default)]
    q: String,
    /// A requested or reported state.
    #[serde(default)]
    state: String,
    #[serde(default)]
    project: String,
    #[serde(default)]
    page: Option<usize>,
}

/// A row of the list.
#[derive(Debug, Serialize)]
struct Row<'a> {
    id: i64,
    title: &'a str,
    software_release: &'a str,
    software_type: &'a str,
    requested: &'static str,
    reported: &'static str,
    /// The node has not reported on the current request yet.
    pending: bool,
    computer: Option<&'a str>,
    project: Option<&'a str>,
    parent: Option<i64>,
    error: bool,
}

fn row(i: &api::Instance) -> Row<'_> {
    Row {
        id: i.id,
        title: &i.title,
        software_release: &i.software_release,
        software_type: &i.software_type,
        requested: i.requested_state.as_str(),
        reported: i.reported_state.map_or("", api::ReportedState::as_str),
        pending: i.reported_timestamp.is_none_or(|t| t < i.timestamp),
        computer: i.computer.as_deref(),
        project: i.project.as_deref(),
        parent: i.parent,
        error: i.error.is_some(),
    }
}

/// Whether an instance passes the list's filters.
fn matches(i: &api::Instance, filters: &Filters) -> bool {
    let q = filters.q.trim().to_lowercase();
    (q.is_empty()
        || q.split_whitespace().all(|word| {
            i.title.to_lowercase().contains(word)
                || i.software_release.to_lowercase().contains(word)
        }))
        && (filters.state.is_empty()
            || i.requested_state.as_str() == filters.state
            || i.reported_state.map(api::ReportedState::as_str) == Some(filters.state.as_str()))
        && (filters.project.is_empty() || i.project.as_deref() == Some(filters.project.as_str()))
}

/// The list's page: its rows, newest first, and where the page is.
pub(crate) fn list_context(instances: &[api::Instance], filters: &Filters) -> Value {
    let kept: Vec<&api::Instance> = instances
        .iter()
        .rev()
        .filter(|i| matches(i, filters))
        .collect();
    let pages = kept.len().div_ceil(PAGE).max(1);
    let page = filters.page.unwrap_or(1).clamp(1, pages);
    let rows: Vec<Row<'_>> = kept
        .iter()
        .skip((page - 1) * PAGE)
        .take(PAGE)
        .map(|i| row(i))
        .collect();
    let projects: std::collections::BTreeSet<String> =
        instances.iter().filter_map(|i| i.project.clone()).collect();
    let query = format!(
        "q={}&state={}&project={}",
        super::percent_encode(&filters.q),
        super::percent_encode(&filters.state),
        super::percent_encode(&filters.project)
    );
    context! {
        query,
        rows => super::ser(&rows),
        total => kept.len(),
        all => instances.len(),
        page,
        pages,
        q => &filters.q,
        state => &filters.state,
        project => &filters.project,
        projects,
        states => ["started", "stopped", "destroyed", "error"],
    }
}

pub(crate) async fn list<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    Query(filters): Query<Filters>,
) -> Response {
    let api = console.api(&viewer);
    match api.get::<Vec<api::Instance>>("/v1/instances").await {
        Ok(instances) => console.page("services.html", &viewer, list_context(&instances, &filters)),
        Err(refusal) => console.refused(&viewer, &refusal),
    }
}

/// What the viewer may do with an instance, as far as buttons go: the API decides again
/// when a form comes back.
pub(crate) struct Rights {
    /// Change its requested state: not a child's (its parent's to request), nor another
    /// user's own instance, even for the admin (that would be a new request of the
    /// admin's own).
    pub(crate) change: bool,
    /// Run its actions (its logs among them): the admin, its owner, its project's members
    /// but readers.
    pub(crate) act: bool,
}

pub(crate) async fn rights<S: Store>(
    console: &Console<S>,
    viewer: &Viewer,
    instance: &api::Instance,
) -> Rights {
    let (holds, admin_acts) = match &instance.project {
        Some(name) => {
            let member = viewer.admin
                || console
                    .api(viewer)
                    .get::<api::Project>(&format!("/v1/projects/{name}"))
                    .await
                    .is_ok_and(|project| requests_in(viewer, &project));
            (member, false)
        }
        None => (
            matches!(console.master.store.instance_owner(instance.id).await, Ok(Some(owner)) if owner == viewer.id),
            viewer.admin,
        ),
    };
    Rights {
        change: instance.parent.is_none() && holds,
        act: holds || admin_acts,
    }
}

/// Whether the viewer may request instances in the project (the admin, members but
/// readers).
fn requests_in(viewer: &Viewer, project: &api::Project) -> bool {
    viewer.admin
        || project
            .members
            .iter()
            .any(|m| m.user == viewer.name && m.role >= api::Role::Member)
}

pub(crate) async fn show<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    Path(id): Path<i64>,
) -> Response {
    let api = console.api(&viewer);
    let instance = match console
        .read::<api::Instance>(&viewer, &format!("/v1/instances/{id}"))
        .await
    {
        Ok(instance) => instance,
        Err(page) => return page,
    };
    // Children: the viewer's instances whose parent this is.
    let children: Vec<api::Instance> = api
        .get::<Vec<api::Instance>>("/v1/instances")
        .await
        .map(|all| all.into_iter().filter(|i| i.parent == Some(id)).collect())
        .unwrap_or_default();
    let usage = api
        .get::<Vec<api::UsageSample>>(&format!("/v1/instances/{id}/usage"))
        .await
        .unwrap_or_default();
    let actions = api
        .get::<Vec<api::actions::Action>>(&format!("/v1/instances/{id}/actions"))
        .await
        .unwrap_or_default();
    // An instance waits while its release does not build: say why, where the viewer may
    // see the computer.
    let build_error = match &instance.computer {
        Some(reference) if instance.reported_state.is_none() || instance.error.is_none() => api
            .get::<api::Computer>(&format!(
                "/v1/computers/{}",
                super::percent_encode(reference)
            ))
            .await
            .ok()
            .and_then(|c| {
                c.software
                    .into_iter()
                    .find(|s| s.software_release == instance.software_release)
            })
            .filter(|s| s.reported_state == Some(api::SoftwareState::Error))
            .map(|s| {
                format!(
                    "the software release does not build on {reference}: {}",
                    s.error.unwrap_or_default()
                )
            }),
        _ => None,
    };
    let Rights {
        change: changeable,
        act: acts,
    } = rights(&console, &viewer, &instance).await;
    let (log_actions, actions): (Vec<_>, Vec<_>) = actions
        .into_iter()
        .partition(|a| a.name == api::actions::LOGS_ACTION);
    let logs = log_actions.last().map(|a| {
        let services: Vec<Value> = a
            .result
            .as_ref()
            .and_then(serde_json::Value::as_object)
            .map(|tails| {
                tails
                    .iter()
                    .map(|(service, text)| context! { service, text => text.as_str().unwrap_or_default() })
                    .collect()
            })
            .unwrap_or_default();
        context! { state => a.state.as_str(), error => &a.error, services, at => a.finished_at.unwrap_or(a.requested_at) }
    });
    let transitions: Vec<&str> = if changeable {
        [
            api::RequestedState::Started,
            api::RequestedState::Stopped,
            api::RequestedState::Destroyed,
        ]
        .into_iter()
        .filter(|s| {
            *s != instance.requested_state
                && instance.requested_state != api::RequestedState::Destroyed
        })
        .map(api::RequestedState::as_str)
        .collect()
    } else {
        Vec::new()
    };
    let json = |p: &api::Parameters| {
        p.iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let link = text.starts_with("http://") || text.starts_with("https://");
                context! { key => k, value => text, link }
            })
            .collect::<Vec<_>>()
    };
    let page = context! {
        instance => super::ser(&row(&instance)),
        parameters => json(&instance.parameters),
        connection => json(&instance.connection),
        sla => &instance.sla,
        shared => &instance.shared,
        host_instance => &instance.host_instance,
        partition => &instance.partition,
        root => &instance.root,
        error_text => instance.error.clone().or(build_error),
        children => super::ser(&children.iter().map(row).collect::<Vec<_>>()),
        transitions,
        acts,
        logs,
        placed => instance.computer.is_some() && instance.requested_state != api::RequestedState::Destroyed,
        cpu_chart => usage_chart(&usage, Measure::Cpu),
        memory_chart => usage_chart(&usage, Measure::Memory),
        restarts => usage.last().map(|u| u.restarts),
        actions => actions.iter().rev().take(10).map(|a| context! {
            id => &a.id, name => &a.name, state => a.state.as_str(),
            result => a.result.as_ref().map(ToString::to_string), error => &a.error,
        }).collect::<Vec<_>>(),
    };
    console.page("service.html", &viewer, page)
}

#[derive(Debug, Clone, Copy)]
enum Measure {
    Cpu,
    Memory,
}

/// CPU as the share of a core used between samples, memory as MiB at each sample.
fn usage_chart(samples: &[api::UsageSample], measure: Measure) -> Option<String> {
    let mut samples: Vec<&api::UsageSample> = samples.iter().collect();
    samples.sort_by_key(|s| s.at);
    if samples.len() < 2 {
        return None;
    }
    let clock = |at: i64| {
        let seconds = at.rem_euclid(86_400);
        format!("{:02}:{:02}", seconds / 3600, seconds % 3600 / 60)
    };
    let points: Vec<Point> = match measure {
        Measure::Cpu => samples
            .windows(2)
            .map(|w| {
                let elapsed = (w[1].at - w[0].at).max(1) as f64;
                let used = (w[1].cpu_seconds - w[0].cpu_seconds).max(0.0);
                Point {
                    label: clock(w[1].at),
                    value: used / elapsed * 100.0,
                }
            })
            .collect(),
        Measure::Memory => samples
            .iter()
            .map(|s| Point {
                label: clock(s.at),
                value: s.memory_bytes as f64 / 1_048_576.0,
            })
            .collect(),
    };
    Some(match measure {
        Measure::Cpu => charts::line(&points, "% of a core", "CPU"),
        Measure::Memory => charts::line(&points, "MiB", "memory"),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// Asks the instance's node for the end of its services' logs (the built-in action
/// `grove-logs`); the page shows them when the node answers.
pub(crate) async fn logs<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<CsrfOnly>,
) -> Response {
    if let Err(refused) = console.check_csrf(&viewer, form.csrf.as_deref()) {
        return refused;
    }
    let request = api::actions::ActionRequest {
        name: api::actions::LOGS_ACTION.to_owned(),
        parameters: api::Parameters::new(),
        wait: Some(10),
    };
    match console
        .api(&viewer)
        .send::<_, api::actions::Action>(
            Method::POST,
            &format!("/v1/instances/{id}/actions"),
            &request,
        )
        .await
    {
        Ok(_) => Redirect::to(&format!("/services/{id}#logs")).into_response(),
        Err(refusal) => console.refused(&viewer, &refusal),
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct StateForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    state: String,
}

pub(crate) async fn set_state<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    Path(id): Path<i64>,
    axum::Form(form): axum::Form<StateForm>,
) -> Response {
    if let Err(refused) = console.check_csrf(&viewer, form.csrf.as_deref()) {
        return refused;
    }
    let api = console.api(&viewer);
    let Some(state) = api::RequestedState::parse(&form.state) else {
        return console.refused(
            &viewer,
            &Refusal {
                status: StatusCode::BAD_REQUEST,
                message: format!("state {:?}: started, stopped or destroyed", form.state),
            },
        );
    };
    let instance = match console
        .read::<api::Instance>(&viewer, &format!("/v1/instances/{id}"))
        .await
    {
        Ok(instance) => instance,
        Err(page) => return page,
    };
    if instance.parent.is_some() {
        return console.refused(
            &viewer,
            &Refusal {
                status: StatusCode::FORBIDDEN,
                message: format!("instance {id} is a child: its parent requests it"),
            },
        );
    }
    // A user's own instance is theirs to request again; another user's, even for the
    // admin, would be a new request of the admin's own: refused here.
    if instance.project.is_none()
        && !matches!(console.master.store.instance_owner(id).await, Ok(Some(owner)) if owner == viewer.id)
    {
        return console.refused(
            &viewer,
            &Refusal {
                status: StatusCode::FORBIDDEN,
                message: format!("instance {id} is another user's"),
            },
        );
    }
    let request = api::InstanceRequest {
        title: instance.title,
        software_release: instance.software_release,
        software_type: instance.software_type,
        parameters: instance.parameters,
        state,
        shared: instance.shared,
        sla: instance.sla,
        project: instance.project,
    };
    match api
        .send::<_, api::Instance>(Method::POST, "/v1/instances", &request)
        .await
    {
        Ok(changed) => Redirect::to(&format!("/services/{}", changed.id)).into_response(),
        Err(refusal) => console.refused(&viewer, &refusal),
    }
}

pub(crate) async fn form<S: Store>(State(console): Shared<S>, viewer: Viewer) -> Response {
    let api = console.api(&viewer);
    let releases = supplied_releases(&console, &viewer).await;
    let projects: Vec<String> = api
        .get::<Vec<api::Project>>("/v1/projects")
        .await
        .map(|p| {
            p.into_iter()
                .filter(|p| requests_in(&viewer, p))
                .map(|p| p.name)
                .collect()
        })
        .unwrap_or_default();
    console.page(
        "request.html",
        &viewer,
        context! { releases, projects, error => None::<String>, values => context! {} },
    )
}

/// The releases the viewer's computers (all, for the admin) are told to install.
async fn supplied_releases<S: Store>(console: &Console<S>, viewer: &Viewer) -> Vec<String> {
    let computers = console
        .api(viewer)
        .get::<Vec<api::Computer>>("/v1/computers")
        .await
        .unwrap_or_default();
    let set: std::collections::BTreeSet<String> = computers
        .into_iter()
        .flat_map(|c| c.software.into_iter().map(|s| s.software_release))
        .collect();
    set.into_iter().collect()
}

/// The request form as sent: repeated `param_key`/`param_value` and `sla_key`/`sla_value`
/// rows, or parameters as one JSON object.
/// What is wrong with a request form as sent.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FormError {
    #[error("give the service a title")]
    NoTitle,
    #[error("give the software release's URL")]
    NoRelease,
    #[error("parameters as JSON: one object, {{\"name\": \"value\"}}")]
    NotAnObject,
    #[error("parameters as JSON, line {} column {}: {source}", .source.line(), .source.column())]
    Json { source: serde_json::Error },
    #[error("state {0:?}: started or stopped")]
    State(String),
}

pub(crate) fn read_request(fields: &[(String, String)]) -> Result<api::InstanceRequest, FormError> {
    let one = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_default()
    };
    let all = |name: &str| {
        fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect::<Vec<_>>()
    };
    let title = one("title");
    if title.is_empty() {
        return Err(FormError::NoTitle);
    }
    let release = one("software_release");
    if release.is_empty() {
        return Err(FormError::NoRelease);
    }
    let mut request = api::InstanceRequest::new(title, release);
    let software_type = one("software_type");
    if !software_type.is_empty() {
        request.software_type = software_type;
    }
    let json = one("parameters_json");
    if json.is_empty() {
        for (key, value) in all("param_key").into_iter().zip(all("param_value")) {
            let key = key.trim();
            if !key.is_empty() {
                request
                    .parameters
                    .insert(key.to_owned(), serde_json::Value::String(value));
            }
        }
    } else {
        request.parameters = match serde_json::from_str::<serde_json::Value>(&json) {
            Ok(serde_json::Value::Object(map)) => map,
            Ok(_) => return Err(FormError::NotAnObject),
            Err(source) => return Err(FormError::Json { source }),
        };
    }
    for (key, value) in all("sla_key").into_iter().zip(all("sla_value")) {
        let key = key.trim();
        if !key.is_empty() {
            request.sla.insert(key.to_owned(), value.trim().to_owned());
        }
    }
    request.shared = one("shared") == "on";
    let project = one("project");
    request.project = (!project.is_empty()).then_some(project);
    let state = one("state");
    if !state.is_empty() {
        request.state =
            api::RequestedState::parse(&state).ok_or_else(|| FormError::State(state.clone()))?;
    }
    Ok(request)
}

pub(crate) async fn request<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    axum::Form(fields): axum::Form<Vec<(String, String)>>,
) -> Response {
    let csrf = fields
        .iter()
        .find(|(k, _)| k == "_csrf")
        .map(|(_, v)| v.as_str());
    if let Err(refused) = console.check_csrf(&viewer, csrf) {
        return refused;
    }
    let again = |error: String| {
        let values: std::collections::BTreeMap<String, String> = fields
            .iter()
            .filter(|(k, _)| k != "_csrf")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut response = console.page("request.html", &viewer, context! { releases => Vec::<String>::new(), projects => Vec::<String>::new(), error, values });
        *response.status_mut() = StatusCode::BAD_REQUEST;
        response
    };
    let request = match read_request(&fields) {
        Ok(request) => request,
        Err(error) => return again(error.to_string()),
    };
    match console
        .api(&viewer)
        .send::<_, api::Instance>(Method::POST, "/v1/instances", &request)
        .await
    {
        Ok(instance) => Redirect::to(&format!("/services/{}", instance.id)).into_response(),
        Err(refusal) if refusal.status == StatusCode::FORBIDDEN => {
            console.refused(&viewer, &refusal)
        }
        Err(refusal) => again(refusal.message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_request_form_reads_rows_or_json() {
        let request = read_request(&fields(&[
            ("title", " web "),
            ("software_release", "/srv/hello/software.cfg"),
            ("software_type", ""),
            ("param_key", "name"),
            ("param_value", "<script>x</script>"),
            ("param_key", ""),
            ("param_value", "ignored"),
            ("sla_key", "computer_guid"),
            ("sla_value", "node-1"),
            ("parameters_json", ""),
        ]))
        .expect("valid");
        assert_eq!(request.title, "web");
        assert_eq!(request.software_type, "default");
        assert_eq!(request.parameters.len(), 1);
        assert_eq!(request.parameters["name"], "<script>x</script>");
        assert_eq!(request.sla["computer_guid"], "node-1");
        assert!(!request.shared && request.project.is_none());

        let json = read_request(&fields(&[
            ("title", "web"),
            ("software_release", "r"),
            ("param_key", "ignored"),
            ("param_value", "x"),
            ("parameters_json", "{\"port\": 8080, \"names\": [\"a\"]}"),
            ("shared", "on"),
            ("project", "p"),
        ]))
        .expect("valid");
        assert_eq!(json.parameters["port"], 8080);
        assert!(!json.parameters.contains_key("ignored"));
        assert!(json.shared);
        assert_eq!(json.project.as_deref(), Some("p"));
    }

    #[test]
    fn a_bad_request_form_says_what_is_wrong() {
        for (pairs, expected) in [
            (vec![("software_release", "r")], "title"),
            (vec![("title", "t")], "release"),
            (
                vec![
                    ("title", "t"),
                    ("software_release", "r"),
                    ("parameters_json", "[1]"),
                ],
                "one object",
            ),
            (
                vec![
                    ("title", "t"),
                    ("software_release", "r"),
                    ("parameters_json", "{\n\"a\": }"),
                ],
                "line 2",
            ),
            (
                vec![
                    ("title", "t"),
                    ("software_release", "r"),
                    ("state", "paused"),
                ],
                "paused",
            ),
        ] {
            let error = read_request(&fields(&pairs))
                .expect_err("refused")
                .to_string();
            assert!(
                error.contains(expected),
                "{error:?} should say {expected:?}"
            );
        }
    }

    fn instance(id: i64, title: &str, project: Option<&str>) -> api::Instance {
        api::Instance {
            id,
            title: title.to_owned(),
            software_release: "https://example.invalid/hello/software.cfg".to_owned(),
            software_type: "default".to_owned(),
            parameters: api::Parameters::new(),
            requested_state: api::RequestedState::Started,
            shared: false,
            sla: Default::default(),
            project: project.map(str::to_owned),
            computer: None,
            partition: None,
            host_instance: None,
            parent: None,
            root: id,
            reported_state: None,
            error: None,
            connection: api::Parameters::new(),
            timestamp: 1,
            reported_timestamp: None,
        }
    }

    #[test]
    fn the_list_renders_with_its_pages_and_escapes_titles() {
        let mut instances: Vec<api::Instance> = (1..=60)
            .map(|id| instance(id, &format!("svc-{id}"), None))
            .collect();
        instances.push(instance(61, "<script>alert(1)</script>", None));
        let filters = Filters {
            q: "a&b c".to_owned(),
            ..Filters::default()
        };
        let mut context = list_context(&instances, &Filters::default());
        let viewer = context! { viewer => context! { name => "ada", admin => false }, csrf => "t", nav => "services" };
        context = minijinja::value::merge_maps([viewer.clone(), context]);
        let html = super::super::templates()
            .get_template("services.html")
            .and_then(|t| t.render(context))
            .expect("renders");
        assert!(html.contains("page 1 of 2"), "two pages");
        assert!(
            html.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
                && !html.contains("<script>alert"),
            "escaped"
        );
        let filtered = minijinja::value::merge_maps([viewer, list_context(&instances, &filters)]);
        let html = super::super::templates()
            .get_template("services.html")
            .and_then(|t| t.render(filtered))
            .expect("renders");
        assert!(html.contains("No service matches"), "{html}");
    }

    #[test]
    fn the_list_filters_and_pages_newest_first() {
        let instances: Vec<api::Instance> = (1..=120)
            .map(|id| instance(id, &format!("svc-{id}"), (id % 2 == 0).then_some("team")))
            .collect();
        let context = list_context(&instances, &Filters::default());
        assert_eq!(
            context
                .get_attr("total")
                .expect("in the context")
                .as_usize(),
            Some(120)
        );
        assert_eq!(
            context
                .get_attr("pages")
                .expect("in the context")
                .as_usize(),
            Some(3)
        );
        let rows = context.get_attr("rows").expect("in the context");
        assert_eq!(rows.len(), Some(PAGE));
        assert_eq!(
            rows.get_item(&Value::from(0))
                .expect("in the context")
                .get_attr("id")
                .expect("in the context")
                .as_i64(),
            Some(120)
        );

        let last = list_context(
            &instances,
            &Filters {
                page: Some(9),
                ..Filters::default()
            },
        );
        assert_eq!(
            last.get_attr("page").expect("in the context").as_usize(),
            Some(3),
            "a page past the end shows the last"
        );
        assert_eq!(
            last.get_attr("rows").expect("in the context").len(),
            Some(20)
        );

        let team = list_context(
            &instances,
            &Filters {
                project: "team".to_owned(),
                q: "SVC-1".to_owned(),
                ..Filters::default()
            },
        );
        // svc-1x and svc-1xx of the even ids: 10, 12..18, 100..120 even.
        let ids: Vec<i64> = team
            .get_attr("rows")
            .expect("in the context")
            .try_iter()
            .expect("in the context")
            .map(|r| {
                r.get_attr("id")
                    .expect("in the context")
                    .as_i64()
                    .expect("in the context")
            })
            .collect();
        assert!(
            ids.iter()
                .all(|id| id % 2 == 0 && id.to_string().starts_with('1')),
            "{ids:?}"
        );
        assert_eq!(ids.len(), 5 + 11);

        let none = list_context(
            &instances,
            &Filters {
                state: "error".to_owned(),
                ..Filters::default()
            },
        );
        assert_eq!(
            none.get_attr("total").expect("in the context").as_usize(),
            Some(0)
        );
        assert_eq!(
            none.get_attr("pages").expect("in the context").as_usize(),
            Some(1)
        );
    }
}
