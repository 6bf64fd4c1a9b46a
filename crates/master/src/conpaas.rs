//! ConPaaS applications: a manifest checked as `grove app check` does, then one manager
//! instance per service (its type's software release, software type `manager`, the
//! service's spec as parameters), which requests its agents itself. The application is
//! stored beside Roboconf's (kind `conpaas`; its roots are the services, each with its
//! manager instance); what the managers publish is what users read back.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use grove_api as api;
use grove_api::apps::{self as wire, conpaas_keys};
use grove_conpaas::manifest;
use grove_conpaas::service::{self, Spec};
use grove_store::{ApplicationRow, NewApplication, ProjectRow, Store};
use serde::{Deserialize, Serialize};

use crate::Master;
use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::{App, Body, Caller, validate_name};

/// What the store keeps of a ConPaaS application, beside its manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Model {
    project: Option<String>,
    services: Vec<ServiceModel>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceModel {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    release: String,
}

fn model(row: &ApplicationRow) -> Result<Model, ApiError> {
    serde_json::from_str(&row.model).map_err(|e| {
        ApiError::internal(format!(
            "the stored model of application {:?} is unreadable: {e}",
            row.name
        ))
    })
}

/// The manifest's verdict as one message: every error, with its line and place.
fn refusal(report: &manifest::Report) -> ApiError {
    let errors: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.level == manifest::Level::Error)
        .map(ToString::to_string)
        .collect();
    ApiError::bad_request(format!("the manifest is not valid: {}", errors.join("; ")))
}

/// The release each service runs: the one the admin registered for its type, else the
/// one Grove ships, else none (a type Grove knows but does not ship).
fn release_of(kind: &str, registered: &BTreeMap<String, String>) -> Result<String, ApiError> {
    registered
        .get(kind)
        .cloned()
        .or_else(|| service::builtin_release(kind).map(str::to_owned))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "service type {kind} has no software release on this cloud: Grove ships php, \
                 mysql and generic; the admin registers others (`grove app type add {kind} URL`)"
            ))
        })
}

fn types_view(registered: &BTreeMap<String, String>) -> Vec<wire::AppType> {
    let others = registered
        .keys()
        .filter(|k| !manifest::TYPES.iter().any(|(t, _)| t == k))
        .map(String::as_str);
    manifest::TYPES
        .iter()
        .map(|(name, _)| *name)
        .chain(others)
        .map(|name| {
            let release = release_of(name, registered).ok();
            wire::AppType {
                name: name.to_owned(),
                builtin: release.is_some() && !registered.contains_key(name),
                release,
            }
        })
        .collect()
}

/// `GET /v1/apps/types`: users and the admin.
pub(crate) async fn list_types<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
) -> Result<Json<Vec<wire::AppType>>, ApiError> {
    if !matches!(caller, Principal::Admin { .. } | Principal::User { .. }) {
        return Err(ApiError::forbidden(
            "only users and the admin read service types",
        ));
    }
    Ok(Json(types_view(&m.store.app_types().await?)))
}

/// `PUT /v1/apps/types/{name}`: the admin registers the release a type runs.
pub(crate) async fn set_type<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Body(asked): Body<wire::AppTypeRelease>,
) -> Result<Json<wire::AppType>, ApiError> {
    if !matches!(caller, Principal::Admin { .. }) {
        return Err(ApiError::forbidden(
            "only the cloud admin registers service types",
        ));
    }
    // ConPaaS's types, or one of the admin's own: a name like an application's.
    validate_name("service type", &name)?;
    let known = manifest::TYPES.iter().any(|(t, _)| *t == name);
    if !known && asked.release.is_none() && !m.store.app_types().await?.contains_key(&name) {
        return Err(ApiError::not_found(format!("no service type {name:?}")));
    }
    if let Some(release) = &asked.release
        && (release.trim().is_empty() || release.chars().any(char::is_whitespace))
    {
        return Err(ApiError::bad_request(format!(
            "release {release:?}: a URL or an absolute path, without spaces"
        )));
    }
    m.store.set_app_type(name.clone(), asked.release).await?;
    let registered = m.store.app_types().await?;
    // A type of the admin's own that was just forgotten is shown without a release.
    let shown = types_view(&registered)
        .into_iter()
        .find(|t| t.name == name)
        .unwrap_or(wire::AppType {
            name,
            release: None,
            builtin: false,
        });
    Ok(Json(shown))
}

/// `POST /v1/apps` with a manifest (`application/json`).
pub(crate) async fn deploy<S: Store>(
    m: &Master<S>,
    owner: i64,
    project: Option<ProjectRow>,
    name: Option<String>,
    body: &[u8],
) -> Result<(StatusCode, Json<wire::AppView>), ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("the manifest is not UTF-8 text"))?;
    let registered = m.store.app_types().await?;
    let extra: Vec<String> = registered
        .keys()
        .filter(|k| !manifest::TYPES.iter().any(|(t, _)| t == k))
        .cloned()
        .collect();
    let report = manifest::check_with(text, &extra);
    let Some(plan) = report.plan.as_ref().filter(|_| report.valid) else {
        return Err(refusal(&report));
    };
    let name = name.unwrap_or_else(|| plan.application.clone());
    validate_name("application name", &name)?;
    crate::apps::reserved(&name)?;
    // Everything is checked before anything is created.
    let mut specs = Vec::new();
    let mut services = Vec::new();
    for index in 0..plan.services.len() {
        let Some(mut spec) = Spec::of(plan, index) else {
            continue;
        };
        service_name(&spec.service)?;
        if services
            .iter()
            .any(|s: &ServiceModel| s.name == spec.service)
        {
            return Err(ApiError::bad_request(format!(
                "two services are named {:?}: give them different ServiceName",
                spec.service
            )));
        }
        spec.application = name.clone();
        services.push(ServiceModel {
            name: spec.service.clone(),
            kind: spec.kind.clone(),
            release: release_of(&spec.kind, &registered)?,
        });
        specs.push(spec);
    }
    let stored = Model {
        project: project.as_ref().map(|p| p.name.clone()),
        services,
    };
    let model_text = serde_json::to_string(&stored)
        .map_err(|e| ApiError::internal(format!("cannot write the model: {e}")))?;
    let roots: Vec<String> = stored.services.iter().map(|s| s.name.clone()).collect();
    let id = m
        .store
        .create_application(NewApplication {
            name: name.clone(),
            kind: grove_store::CONPAAS,
            owner,
            project: project.as_ref().map(|p| p.id),
            archive: body.to_vec(),
            model: model_text.clone(),
            roots,
        })
        .await?;
    let row = ApplicationRow {
        id,
        name: name.clone(),
        kind: grove_store::CONPAAS.to_owned(),
        owner_id: owner,
        project_id: project.as_ref().map(|p| p.id),
        model: model_text,
        generation: 1,
    };
    for (n, (spec, service)) in specs.iter().zip(&stored.services).enumerate() {
        let placed = request_manager(
            m,
            &row,
            &stored,
            service,
            spec.to_parameters(),
            api::RequestedState::Started,
        )
        .await;
        let failed = match placed {
            Ok(instance) => m
                .store
                .set_application_root(id, service.name.clone(), instance.id)
                .await
                .err()
                .map(ApiError::from),
            Err(e) => Some(e),
        };
        if let Some(e) = failed {
            // Nothing half deployed stays.
            for done in &stored.services[..n] {
                let _ = destroy_manager(m, &row, &stored, done).await;
            }
            m.store.delete_application(id).await?;
            return Err(e);
        }
    }
    tracing::info!(application = %name, services = specs.len(), "ConPaaS application deployed");
    Ok((StatusCode::CREATED, Json(view(m, &row).await?)))
}

/// A service's name as manifests write them (`Sudoku PHP`): any text but `/`, without
/// control characters, at most 128 bytes.
fn service_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty()
        || name.len() > 128
        || name.contains('/')
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::bad_request(format!(
            "service name {name:?}: up to 128 bytes of text, without `/` or control characters"
        )));
    }
    Ok(())
}

fn manager_title(row: &ApplicationRow, service: &str) -> String {
    format!("{}/{service}", row.name)
}

async fn request_manager<S: Store>(
    m: &Master<S>,
    row: &ApplicationRow,
    model: &Model,
    service: &ServiceModel,
    parameters: api::Parameters,
    state: api::RequestedState,
) -> Result<api::Instance, ApiError> {
    let request = api::InstanceRequest {
        title: manager_title(row, &service.name),
        software_release: service.release.clone(),
        software_type: service::MANAGER.to_owned(),
        parameters,
        state,
        shared: false,
        sla: BTreeMap::new(),
        project: model.project.clone(),
    };
    let (instance, changed) = m
        .store
        .request(row.owner_id, crate::apps::requester(row), request)
        .await?;
    m.changes.notify(&changed);
    Ok(instance)
}

/// Asks for a manager in another state, its parameters as they are.
async fn set_manager_state<S: Store>(
    m: &Master<S>,
    row: &ApplicationRow,
    model: &Model,
    service: &ServiceModel,
    state: api::RequestedState,
) -> Result<(), ApiError> {
    let roots = m.store.application_roots(row.id).await?;
    let Some(id) = roots
        .iter()
        .find(|r| r.root == service.name)
        .and_then(|r| r.instance_id)
    else {
        return Ok(());
    };
    let Some(instance) = m.store.instance(id).await? else {
        return Ok(());
    };
    if instance.requested_state == api::RequestedState::Destroyed {
        return Ok(());
    }
    request_manager(m, row, model, service, instance.parameters, state).await?;
    Ok(())
}

async fn destroy_manager<S: Store>(
    m: &Master<S>,
    row: &ApplicationRow,
    model: &Model,
    service: &ServiceModel,
) -> Result<(), ApiError> {
    set_manager_state(m, row, model, service, api::RequestedState::Destroyed).await
}

/// The application as users read it: each service's manager and what it published.
pub(crate) async fn view<S: Store>(
    m: &Master<S>,
    row: &ApplicationRow,
) -> Result<wire::AppView, ApiError> {
    let stored = model(row)?;
    let mut roots = BTreeMap::new();
    let mut services = Vec::new();
    let instances: BTreeMap<String, Option<i64>> = m
        .store
        .application_roots(row.id)
        .await?
        .into_iter()
        .map(|r| (r.root, r.instance_id))
        .collect();
    for service in &stored.services {
        let Some(Some(id)) = instances.get(&service.name) else {
            continue;
        };
        roots.insert(service.name.clone(), *id);
        let Some(instance) = m.store.instance(*id).await? else {
            continue;
        };
        let connection = instance.connection.clone();
        let nodes = connection
            .get(conpaas_keys::NODES)
            .and_then(|v| v.as_str())
            .and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default();
        services.push(wire::AppService {
            name: service.name.clone(),
            kind: service.kind.clone(),
            instance: *id,
            state: instance.reported_state.map(|s| s.as_str().to_owned()),
            error: instance.error.clone(),
            ready: connection.get(conpaas_keys::READY).and_then(|v| v.as_str()) == Some("true")
                && instance.reported_state == Some(api::ReportedState::Started),
            nodes,
            connection,
        });
    }
    Ok(wire::AppView {
        name: row.name.clone(),
        project: stored.project.clone(),
        bindings: BTreeMap::new(),
        roots,
        instances: Vec::new(),
        services,
    })
}

/// `GET /v1/apps`' line for a ConPaaS application.
pub(crate) async fn summary<S: Store>(
    m: &Master<S>,
    row: &ApplicationRow,
) -> Result<wire::AppSummary, ApiError> {
    let view = view(m, row).await?;
    Ok(wire::AppSummary {
        name: row.name.clone(),
        descriptor: "conpaas".to_owned(),
        version: String::new(),
        project: view.project.clone(),
        instances: view.services.len(),
        started: view.services.iter().filter(|s| s.ready).count(),
    })
}

/// `POST /v1/apps/{name}/undeploy`: every service stopped (its agents with it).
pub(crate) async fn undeploy<S: Store>(
    m: &Master<S>,
    row: &ApplicationRow,
) -> Result<wire::AppView, ApiError> {
    let stored = model(row)?;
    for service in &stored.services {
        set_manager_state(m, row, &stored, service, api::RequestedState::Stopped).await?;
    }
    view(m, row).await
}

/// `DELETE /v1/apps/{name}`: every service destroyed (its agents with it), and the
/// application forgotten.
pub(crate) async fn delete<S: Store>(m: &Master<S>, row: &ApplicationRow) -> Result<(), ApiError> {
    let stored = model(row)?;
    for service in &stored.services {
        destroy_manager(m, row, &stored, service).await?;
    }
    m.store.delete_application(row.id).await?;
    tracing::info!(application = %row.name, "ConPaaS application deleted");
    Ok(())
}
