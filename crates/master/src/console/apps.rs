//! Applications: a Roboconf application as a diagram of its instances (states, and
//! imports wired to the exports they resolve to), a ConPaaS application's services with
//! their roles and node counts, and buttons that add or remove nodes (the manager's
//! `add_nodes` and `remove_nodes` actions).

use std::collections::HashMap;
use std::fmt::Write;

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use grove_api as api;
use grove_api::apps as wire;
use grove_store::Store;
use minijinja::context;
use serde::Deserialize;

use super::api::Refusal;
use super::charts::escape;
use super::{Shared, Viewer, percent_encode};

pub(crate) async fn list<S: Store>(State(console): Shared<S>, viewer: Viewer) -> Response {
    match console
        .api(&viewer)
        .get::<Vec<wire::AppSummary>>("/v1/apps")
        .await
    {
        Ok(apps) => console.page("apps.html", &viewer, context! { apps => super::ser(&apps) }),
        Err(refusal) => console.refused(&viewer, &refusal),
    }
}

pub(crate) async fn show<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    Path(name): Path<String>,
) -> Response {
    let api = console.api(&viewer);
    let view = match console
        .read::<wire::AppView>(&viewer, &format!("/v1/apps/{}", percent_encode(&name)))
        .await
    {
        Ok(view) => view,
        Err(page) => return page,
    };
    let mut services = Vec::new();
    for s in &view.services {
        let changeable = match api
            .get::<api::Instance>(&format!("/v1/instances/{}", s.instance))
            .await
        {
            Ok(manager) => {
                super::services::rights(&console, &viewer, &manager)
                    .await
                    .act
            }
            Err(_) => false,
        };
        services.push(context! {
            name => &s.name,
            kind => &s.kind,
            instance => &s.instance,
            state => &s.state,
            error => &s.error,
            ready => &s.ready,
            url => s.connection.get("url").and_then(|u| u.as_str()),
            roles => s.nodes.iter().map(|(role, nodes)| context! { role, count => nodes.len(), nodes }).collect::<Vec<_>>(),
            changeable,
        });
    }
    let page = context! {
        name => &view.name,
        project => &view.project,
        conpaas => !view.services.is_empty(),
        services,
        instances => view.instances.iter().map(|i| context! {
            path => &i.path, component => &i.component, state => &i.state, wanted => &i.wanted,
            error => &i.error, missing => &i.missing,
            exports => i.exports.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        }).collect::<Vec<_>>(),
        roots => &view.roots,
        diagram => (!view.instances.is_empty()).then(|| diagram(&view.instances)),
    };
    console.page("app.html", &viewer, page)
}

const BOX_W: f64 = 220.0;
const BOX_H: f64 = 40.0;
const ROW: f64 = 56.0;
const INDENT: f64 = 28.0;

/// The instances as a tree of boxes (children indented under their parent), each
/// coloured by its state, and an arc from each importer to each exporter it resolves to.
pub(crate) fn diagram(instances: &[wire::AppInstance]) -> String {
    let mut sorted: Vec<&wire::AppInstance> = instances.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    let row: HashMap<&str, usize> = sorted
        .iter()
        .enumerate()
        .map(|(i, inst)| (inst.path.as_str(), i))
        .collect();
    let depth = |path: &str| path.matches('/').count().saturating_sub(1) as f64;
    let max_depth = sorted.iter().map(|i| depth(&i.path)).fold(0.0, f64::max);
    let arcs_x = 8.0 + max_depth * INDENT + BOX_W;
    let width = arcs_x + 320.0;
    let height = sorted.len() as f64 * ROW + 8.0;
    let mut svg = format!(
        r#"<svg class="diagram" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="instances and their wiring" xmlns="http://www.w3.org/2000/svg">"#
    );
    // Containment lines first, under the boxes.
    for (i, inst) in sorted.iter().enumerate() {
        if let Some((parent, _)) = inst.path.rsplit_once('/')
            && let Some(&p) = row.get(parent)
        {
            let x = 8.0 + depth(parent) * INDENT + 10.0;
            let _ = write!(
                svg,
                r#"<path class="contains" d="M{x},{:.1} V{:.1} H{:.1}"/>"#,
                p as f64 * ROW + 4.0 + BOX_H,
                i as f64 * ROW + 4.0 + BOX_H / 2.0,
                x + INDENT - 10.0,
            );
        }
    }
    let mut lane = 0.0;
    for (i, inst) in sorted.iter().enumerate() {
        for (prefix, exporters) in &inst.imports {
            for exporter in exporters {
                let Some(&e) = row.get(exporter.path.as_str()) else {
                    continue;
                };
                lane += 1.0;
                let bulge = arcs_x + 16.0 + (lane % 8.0) * 18.0;
                let (y1, y2) = (
                    i as f64 * ROW + 4.0 + BOX_H / 2.0,
                    e as f64 * ROW + 4.0 + BOX_H / 2.0,
                );
                let (x1, x2) = (
                    8.0 + depth(&inst.path) * INDENT + BOX_W,
                    8.0 + depth(&exporter.path) * INDENT + BOX_W,
                );
                let _ = write!(
                    svg,
                    r#"<path class="wire" d="M{x1:.1},{y1:.1} C{bulge:.1},{y1:.1} {bulge:.1},{y2:.1} {x2:.1},{y2:.1}"><title>{} imports {} from {}</title></path><circle class="wire-end" cx="{x2:.1}" cy="{y2:.1}" r="3"/><text class="wire-label" x="{:.1}" y="{:.1}">{}</text>"#,
                    escape(&inst.path),
                    escape(prefix),
                    escape(&exporter.path),
                    bulge + 6.0,
                    f64::midpoint(y1, y2) + 4.0,
                    escape(prefix),
                );
            }
        }
        for prefix in &inst.missing {
            let y = i as f64 * ROW + 4.0 + BOX_H / 2.0;
            let x = 8.0 + depth(&inst.path) * INDENT + BOX_W;
            let _ = write!(
                svg,
                r#"<text class="missing" x="{:.1}" y="{:.1}">needs {}</text>"#,
                x + 6.0,
                y + 4.0,
                escape(prefix)
            );
        }
    }
    for (i, inst) in sorted.iter().enumerate() {
        let x = 8.0 + depth(&inst.path) * INDENT;
        let y = i as f64 * ROW + 4.0;
        let state = state_class(&inst.state);
        let name = inst.path.rsplit('/').next().unwrap_or(&inst.path);
        let _ = write!(
            svg,
            r#"<g class="node {state}"><rect x="{x:.1}" y="{y:.1}" width="{BOX_W}" height="{BOX_H}" rx="6"/><text class="name" x="{:.1}" y="{:.1}">{}</text><text class="detail" x="{:.1}" y="{:.1}">{} · {}</text><title>{}: {}</title></g>"#,
            x + 10.0,
            y + 16.0,
            escape(name),
            x + 10.0,
            y + 32.0,
            escape(&inst.component),
            escape(&inst.state),
            escape(&inst.path),
            escape(&inst.state),
        );
    }
    svg.push_str("</svg>");
    svg
}

fn state_class(state: &str) -> &'static str {
    match state {
        "deployed_started" => "started",
        "deployed_stopped" => "stopped",
        "not_deployed" => "absent",
        s if s.contains("error") || s == "problem" => "failed",
        _ => "moving",
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct NodesForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    service: String,
    role: String,
    count: u32,
    /// `add` or `remove`.
    change: String,
}

/// Adds or removes nodes of a role: the service manager's action, not waited for (the
/// page follows the manager's publications live).
pub(crate) async fn nodes<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    Path(name): Path<String>,
    axum::Form(form): axum::Form<NodesForm>,
) -> Response {
    if let Err(refused) = console.check_csrf(&viewer, form.csrf.as_deref()) {
        return refused;
    }
    let action = match form.change.as_str() {
        "add" => "add_nodes",
        "remove" => "remove_nodes",
        other => {
            return console.refused(
                &viewer,
                &Refusal {
                    status: StatusCode::BAD_REQUEST,
                    message: format!("change {other:?}: add or remove"),
                },
            );
        }
    };
    let api = console.api(&viewer);
    let view = match console
        .read::<wire::AppView>(&viewer, &format!("/v1/apps/{}", percent_encode(&name)))
        .await
    {
        Ok(view) => view,
        Err(page) => return page,
    };
    let Some(service) = view.services.iter().find(|s| s.name == form.service) else {
        return console.refused(
            &viewer,
            &Refusal {
                status: StatusCode::NOT_FOUND,
                message: format!("application {name:?} has no service {:?}", form.service),
            },
        );
    };
    let mut parameters = api::Parameters::new();
    parameters.insert("role".to_owned(), form.role.clone().into());
    parameters.insert("count".to_owned(), form.count.into());
    let request = api::actions::ActionRequest {
        name: action.to_owned(),
        parameters,
        wait: None,
    };
    match api
        .send::<_, api::actions::Action>(
            Method::POST,
            &format!("/v1/instances/{}/actions", service.instance),
            &request,
        )
        .await
    {
        Ok(_) => Redirect::to(&format!("/apps/{}", percent_encode(&name))).into_response(),
        Err(refusal) => console.refused(&viewer, &refusal),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn instance(path: &str, state: &str, imports: &[(&str, &str)]) -> wire::AppInstance {
        let mut map: BTreeMap<String, Vec<wire::AppImport>> = BTreeMap::new();
        for (prefix, exporter) in imports {
            map.entry((*prefix).to_owned())
                .or_default()
                .push(wire::AppImport {
                    path: (*exporter).to_owned(),
                    values: BTreeMap::new(),
                });
        }
        wire::AppInstance {
            path: path.to_owned(),
            component: "Comp<x>".to_owned(),
            state: state.to_owned(),
            wanted: "deployed_started".to_owned(),
            exports: BTreeMap::new(),
            imports: map,
            missing: vec![],
            error: None,
        }
    }

    #[test]
    fn the_diagram_draws_each_instance_and_each_wire() {
        let svg = diagram(&[
            instance(
                "/vm/web",
                "deployed_started",
                &[("db", "/vm/db"), ("cache", "/vm/cache")],
            ),
            instance("/vm", "deployed_started", &[]),
            instance("/vm/db", "starting", &[]),
            instance("/vm/cache", "not_deployed", &[]),
        ]);
        assert_eq!(svg.matches("<g class=\"node").count(), 4);
        assert_eq!(svg.matches("class=\"wire\"").count(), 2);
        assert_eq!(svg.matches("class=\"contains\"").count(), 3);
        assert!(
            svg.contains("node started")
                && svg.contains("node moving")
                && svg.contains("node absent")
        );
        assert!(svg.contains("/vm/web imports db from /vm/db"));
        assert!(svg.contains("Comp&lt;x&gt;") && !svg.contains("<x>"));
    }
}
