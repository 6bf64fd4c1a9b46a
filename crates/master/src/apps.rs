//! Roboconf applications at the master: users deploy an archive, change its instances
//! and read it back; each root instance is a Grove instance whose partition runs `grove
//! app agent`, which waits here for its subtree and reports states. What the model means
//! is `grove_roboconf::deploy`'s; this module authorizes, stores (a change is written
//! only over the generation it was computed from) and wakes the partitions.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use grove_api as api;
use grove_api::apps as wire;
use grove_roboconf::autonomic::Autonomic;
use grove_roboconf::check::{self, Application};
use grove_roboconf::deploy::{self, DeployError, Deployment, Reports};
use grove_roboconf::exec;
use grove_roboconf::tree::Tree;
use grove_store::{ApplicationRow, NewApplication, Requester, Store, StoreError};
use serde::Deserialize;
use tokio::sync::watch;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::routes::{Body, Caller, validate_name};
use crate::{Master, lock};

type App<S> = State<Arc<Master<S>>>;

/// The longest a partition waits for its application to change in one call (what other
/// masters change wakes it too: `Changed::applications`).
const PARTITION_WAIT: Duration = Duration::from_secs(25);

/// How many times a change is computed again when another one was written first.
const RETRIES: usize = 20;

/// What the master keeps of applications between requests: each one's generation (the
/// partitions wait on it) and its parsed archive.
#[derive(Debug, Default)]
pub(crate) struct Apps {
    generations: Mutex<HashMap<i64, watch::Sender<i64>>>,
    parsed: Mutex<HashMap<(i64, String), Arc<Application>>>,
    /// What each application's autonomic rules saw (this master's events only).
    autonomic: Mutex<HashMap<i64, Autonomic>>,
}

impl Apps {
    fn subscribe(&self, id: i64) -> watch::Receiver<i64> {
        lock(&self.generations)
            .entry(id)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    fn bump(&self, id: i64, generation: i64) {
        let generations = lock(&self.generations);
        if let Some(sender) = generations.get(&id) {
            sender.send_if_modified(|g| {
                let newer = generation > *g;
                if newer {
                    *g = generation;
                }
                newer
            });
        }
    }

    /// Another master changed the application: its partitions' long polls read it again.
    pub(crate) fn kick(&self, id: i64) {
        if let Some(sender) = lock(&self.generations).get(&id) {
            sender.send_modify(|_| {});
        }
    }

    /// What other masters changed may have been missed: every long poll reads again.
    pub(crate) fn kick_all(&self) {
        for sender in lock(&self.generations).values() {
            sender.send_modify(|_| {});
        }
    }

    fn forget(&self, id: i64) {
        lock(&self.generations).remove(&id);
        lock(&self.parsed).retain(|(app, _), _| *app != id);
        lock(&self.autonomic).remove(&id);
    }
}

fn refused(e: DeployError) -> ApiError {
    match e {
        DeployError::NoInstance(_) => ApiError::not_found(e.to_string()),
        DeployError::Exists(_) => {
            ApiError::new(StatusCode::CONFLICT, api::codes::CONFLICT, e.to_string())
        }
        DeployError::Corrupt(_) => ApiError::internal(e.to_string()),
        _ => ApiError::bad_request(e.to_string()),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Reads and checks an archive: every error Roboconf's checks find, then every reason
/// Grove cannot run it, in one answer.
fn read_archive(bytes: &[u8]) -> Result<Application, ApiError> {
    let tree =
        Tree::from_zip_bytes(bytes, std::path::Path::new("application.zip")).map_err(|e| {
            ApiError::bad_request(format!("the body is not an application archive: {e}"))
        })?;
    let (report, app) = check::application(tree);
    let errors: Vec<String> = report
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    let Some(app) = app.filter(|_| errors.is_empty()) else {
        return Err(ApiError::bad_request(format!(
            "the application is not valid: {}",
            errors.join("; ")
        )));
    };
    let refusals: Vec<String> = deploy::refusals(&app)
        .iter()
        .map(ToString::to_string)
        .collect();
    if !refusals.is_empty() {
        return Err(ApiError::bad_request(format!(
            "Grove cannot run this application: {}",
            refusals.join("; ")
        )));
    }
    Ok(app)
}

/// An application's parsed archive, from the cache while its digest is the same.
async fn parsed<S: Store>(
    m: &Master<S>,
    row: &ApplicationRow,
    deployment: &Deployment,
) -> Result<Arc<Application>, ApiError> {
    let key = (row.id, deployment.archive.clone());
    if let Some(app) = lock(&m.apps.parsed).get(&key) {
        return Ok(app.clone());
    }
    let bytes = m
        .store
        .application_archive(row.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no application {:?}", row.name)))?;
    let tree = Tree::from_zip_bytes(&bytes, std::path::Path::new(&row.name))
        .map_err(|e| ApiError::internal(format!("application {:?}: {e}", row.name)))?;
    let (_, app) = check::application(tree);
    let app = Arc::new(app.ok_or_else(|| {
        ApiError::internal(format!("application {:?} no longer checks", row.name))
    })?);
    lock(&m.apps.parsed).insert(key, app.clone());
    Ok(app)
}

fn model(row: &ApplicationRow) -> Result<Deployment, ApiError> {
    if row.kind != grove_store::ROBOCONF {
        return Err(ApiError::bad_request(format!(
            "application {:?} is a ConPaaS application: its services change through their \
             managers' actions (`grove app service`)",
            row.name
        )));
    }
    Deployment::from_json(&row.model).map_err(refused)
}

async fn reports<S: Store>(
    m: &Master<S>,
    id: i64,
) -> Result<(Reports, BTreeMap<String, i64>), ApiError> {
    let mut reports = Reports::new();
    let mut instances = BTreeMap::new();
    for root in m.store.application_roots(id).await? {
        let report: wire::AppReport = serde_json::from_str(&root.report).unwrap_or_default();
        reports.insert(root.root.clone(), report);
        if let Some(instance) = root.instance_id {
            instances.insert(root.root, instance);
        }
    }
    Ok((reports, instances))
}

/// The exporters of the applications bound to `deployment`'s external imports, and the
/// generations they are at (summed: the partitions' documents change with them). With
/// `watch`, each bound application is watched once its row is read, before its model and
/// reports are: a change in between makes a newer generation than the one summed, so the
/// next long poll answers at once.
async fn external<S: Store>(
    m: &Master<S>,
    deployment: &Deployment,
    mut watch: Option<&mut Vec<watch::Receiver<i64>>>,
) -> Result<(deploy::External, i64), ApiError> {
    let mut external = deploy::External::new();
    let mut generations = 0;
    for (prefix, names) in &deployment.bindings {
        let slot = external.entry(prefix.clone()).or_default();
        for name in names {
            // A bound application deleted since is no exporter.
            let Some(row) = m.store.application(name.clone()).await? else {
                continue;
            };
            if let Some(changes) = watch.as_deref_mut() {
                changes.push(m.apps.subscribe(row.id));
            }
            let other = model(&row)?;
            let app = parsed(m, &row, &other).await?;
            let (reports, _) = reports(m, row.id).await?;
            slot.extend(other.published(name, &app.graph, &reports, &app.external_exports));
            generations += row.generation;
        }
    }
    Ok((external, generations))
}

/// The application if the caller may act on it: its owner, the cloud admin, or a
/// member of its project with `needed`. Others are told it does not exist.
async fn acting_on<S: Store>(
    m: &Master<S>,
    caller: &Principal,
    name: &str,
    needed: api::Role,
) -> Result<ApplicationRow, ApiError> {
    let missing = || ApiError::not_found(format!("no application {name:?}"));
    let row = m
        .store
        .application(name.to_owned())
        .await?
        .ok_or_else(missing)?;
    match caller {
        Principal::Admin { .. } => Ok(row),
        Principal::User { id } if *id == row.owner_id => Ok(row),
        Principal::User { id } => {
            let Some(project) = row.project_id else {
                return Err(missing());
            };
            match m.store.role(project, *id).await? {
                Some(role) if role >= needed => Ok(row),
                Some(role) => Err(ApiError::forbidden(format!(
                    "a {} of the application's project may not do this (it takes a {})",
                    role.as_str(),
                    needed.as_str()
                ))),
                None => Err(missing()),
            }
        }
        Principal::Node { .. } | Principal::Partition { .. } => Err(ApiError::forbidden(
            "only users and the admin act on applications",
        )),
    }
}

/// Who requests an application's root instances: its owner, in its project if any.
pub(crate) fn requester(row: &ApplicationRow) -> Requester {
    match row.project_id {
        Some(project) => Requester::Project {
            project,
            user: row.owner_id,
        },
        None => Requester::User(row.owner_id),
    }
}

/// Requests (or, with `Destroyed`, destroys) the Grove instance of a root instance.
async fn request_root<S: Store>(
    m: &Master<S>,
    row: &ApplicationRow,
    deployment: &Deployment,
    sla: BTreeMap<String, String>,
    root: &str,
    state: api::RequestedState,
) -> Result<api::Instance, ApiError> {
    let request = api::InstanceRequest {
        title: format!("{}{root}", row.name),
        software_release: wire::ROBOCONF_RELEASE.to_owned(),
        software_type: "default".to_owned(),
        parameters: api::Parameters::new(),
        state,
        shared: false,
        sla,
        project: deployment.project.clone(),
    };
    let (instance, changed) = m
        .store
        .request(row.owner_id, requester(row), request)
        .await?;
    m.changes.notify(&changed);
    Ok(instance)
}

async fn place_root<S: Store>(
    m: &Master<S>,
    row: &ApplicationRow,
    app: &Application,
    deployment: &Deployment,
    root: &str,
) -> Result<(), ApiError> {
    let component = deployment
        .instances()
        .iter()
        .find(|i| i.path == root)
        .map(|i| i.component.clone())
        .unwrap_or_default();
    let sla = deploy::placement(app, &component).map_err(refused)?;
    let instance =
        request_root(m, row, deployment, sla, root, api::RequestedState::Started).await?;
    m.store
        .set_application_root(row.id, root.to_owned(), instance.id)
        .await?;
    Ok(())
}

async fn destroy_root<S: Store>(
    m: &Master<S>,
    row: &ApplicationRow,
    deployment: &Deployment,
    root: &str,
) -> Result<(), ApiError> {
    request_root(
        m,
        row,
        deployment,
        BTreeMap::new(),
        root,
        api::RequestedState::Destroyed,
    )
    .await
    .map(|_| ())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeployQuery {
    name: Option<String>,
    project: Option<String>,
}

/// Names the API's own paths take below `/v1/apps/`.
pub(crate) fn reserved(name: &str) -> Result<(), ApiError> {
    if matches!(name, "types" | "partition") {
        return Err(ApiError::bad_request(format!(
            "application name {name:?} is reserved: choose another with --name"
        )));
    }
    Ok(())
}

/// `POST /v1/apps?name=&project=`: the body is the application's ZIP, or (sent as
/// `application/json`) a ConPaaS manifest.
pub(crate) async fn deploy<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    query: Result<Query<DeployQuery>, axum::extract::rejection::QueryRejection>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<wire::AppView>), ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(name) = &query.name {
        reserved(name)?;
    }
    let owner = match caller {
        Principal::Admin { id } | Principal::User { id } => id,
        _ => {
            return Err(ApiError::forbidden(
                "only users and the admin deploy applications",
            ));
        }
    };
    let project = match &query.project {
        Some(name) => {
            let project = crate::projects::acting_in(&m, &caller, name, api::Role::Member).await?;
            crate::billing::check_credit(&m, &project, api::RequestedState::Started).await?;
            Some(project)
        }
        None => None,
    };
    let manifest = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/json"));
    if manifest {
        return crate::conpaas::deploy(&m, owner, project, query.name.clone(), &body).await;
    }
    let app = read_archive(&body)?;
    let name = query
        .name
        .clone()
        .or_else(|| app.descriptor.name.clone())
        .unwrap_or_default();
    validate_name("application name", &name)?;
    reserved(&name)?;
    let mut deployment = Deployment::new(&app);
    deployment.archive = sha256_hex(&body);
    deployment.project = project.as_ref().map(|p| p.name.clone());
    let roots = deployment.roots();
    let id = m
        .store
        .create_application(NewApplication {
            name: name.clone(),
            owner,
            project: project.as_ref().map(|p| p.id),
            kind: grove_store::ROBOCONF,
            archive: body.to_vec(),
            model: deployment.to_json(),
            roots: roots.clone(),
        })
        .await?;
    let row = ApplicationRow {
        id,
        name: name.clone(),
        kind: grove_store::ROBOCONF.to_owned(),
        owner_id: owner,
        project_id: project.as_ref().map(|p| p.id),
        model: deployment.to_json(),
        generation: 1,
    };
    // Parsed once: kept for the partitions' requests to come.
    let app = Arc::new(app);
    lock(&m.apps.parsed).insert((id, deployment.archive.clone()), app.clone());
    for (n, root) in roots.iter().enumerate() {
        if let Err(e) = place_root(&m, &row, &app, &deployment, root).await {
            // Nothing half deployed stays: the roots placed go, and the application.
            for placed in &roots[..n] {
                let _ = destroy_root(&m, &row, &deployment, placed).await;
            }
            m.store.delete_application(id).await?;
            m.apps.forget(id);
            return Err(e);
        }
    }
    tracing::info!(application = %name, roots = roots.len(), "application deployed");
    Ok((StatusCode::CREATED, Json(view(&m, &row).await?)))
}

async fn view<S: Store>(m: &Master<S>, row: &ApplicationRow) -> Result<wire::AppView, ApiError> {
    let row = m
        .store
        .application(row.name.clone())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no application {:?}", row.name)))?;
    if row.kind == grove_store::CONPAAS {
        return crate::conpaas::view(m, &row).await;
    }
    let deployment = model(&row)?;
    let app = parsed(m, &row, &deployment).await?;
    let (reports, roots) = reports(m, row.id).await?;
    let (external, _) = external(m, &deployment, None).await?;
    Ok(wire::AppView {
        name: row.name.clone(),
        project: deployment.project.clone(),
        bindings: deployment
            .bindings
            .iter()
            .map(|(prefix, apps)| (prefix.clone(), apps.iter().cloned().collect()))
            .collect(),
        roots,
        instances: deployment.view(&app.graph, &reports, &external),
        services: Vec::new(),
    })
}

/// `GET /v1/apps`.
pub(crate) async fn list<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
) -> Result<Json<Vec<wire::AppSummary>>, ApiError> {
    let member = match caller {
        Principal::Admin { .. } => None,
        Principal::User { id } => Some(id),
        _ => {
            return Err(ApiError::forbidden(
                "only users and the admin list applications",
            ));
        }
    };
    let mut out = Vec::new();
    for row in m.store.applications(member).await? {
        if row.kind == grove_store::CONPAAS {
            out.push(crate::conpaas::summary(&m, &row).await?);
            continue;
        }
        let deployment = model(&row)?;
        let (reports, _) = reports(&m, row.id).await?;
        let started = reports
            .values()
            .flat_map(|r| r.instances.values())
            .filter(|o| o.state == "deployed_started")
            .count();
        out.push(wire::AppSummary {
            name: row.name.clone(),
            descriptor: deployment.descriptor.0.clone(),
            version: deployment.descriptor.1.clone(),
            project: deployment.project.clone(),
            instances: deployment.instances().len(),
            started,
        });
    }
    Ok(Json(out))
}

/// `GET /v1/apps/{name}`.
pub(crate) async fn show<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<wire::AppView>, ApiError> {
    // A root's partition (a ConPaaS manager finding its sibling services) reads its own
    // application.
    if let Principal::Partition { .. } = caller
        && let Ok((row, _)) = own_root(&m, &caller).await
        && row.name == name
    {
        return Ok(Json(view(&m, &row).await?));
    }
    let row = acting_on(&m, &caller, &name, api::Role::Reader).await?;
    Ok(Json(view(&m, &row).await?))
}

/// Applies `change` to the application's model and writes it over the generation it was
/// read at, again from a fresh read when another change came first. Then places the
/// roots that appeared and destroys those that left.
async fn change<S: Store>(
    m: &Master<S>,
    row: ApplicationRow,
    change: impl Fn(&mut Deployment, &Application, &Reports) -> Result<(), DeployError>,
) -> Result<wire::AppView, ApiError> {
    let mut row = row;
    for _ in 0..RETRIES {
        let mut deployment = model(&row)?;
        let app = parsed(m, &row, &deployment).await?;
        let (reports, _) = reports(m, row.id).await?;
        let before = deployment.roots();
        change(&mut deployment, &app, &reports).map_err(refused)?;
        let (_, gone) = deployment.settle(&reports);
        let roots = deployment.roots();
        match m
            .store
            .update_application(row.id, row.generation, deployment.to_json(), roots.clone())
            .await
        {
            Ok(generation) => {
                m.apps.bump(row.id, generation);
                m.changes.pulse();
                for root in roots.iter().filter(|r| !before.contains(r)) {
                    place_root(m, &row, &app, &deployment, root).await?;
                }
                for root in &gone {
                    destroy_root(m, &row, &deployment, root).await?;
                }
                return view(m, &row).await;
            }
            Err(StoreError::Conflict(_)) => {
                row = m
                    .store
                    .application(row.name.clone())
                    .await?
                    .ok_or_else(|| ApiError::not_found(format!("no application {:?}", row.name)))?;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        api::codes::CONFLICT,
        format!("application {:?} kept changing: try again", row.name),
    ))
}

/// `POST /v1/apps/{name}/instances`.
pub(crate) async fn add_instance<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Body(new): Body<wire::NewAppInstance>,
) -> Result<(StatusCode, Json<wire::AppView>), ApiError> {
    let row = acting_on(&m, &caller, &name, api::Role::Member).await?;
    let view = change(&m, row, |d, app, _| {
        d.add(
            &app.graph,
            &new.parent,
            &new.component,
            &new.name,
            &new.properties,
        )
        .map(|_| ())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InstancePath {
    path: String,
}

/// `DELETE /v1/apps/{name}/instances?path=`: the instance and its descendants.
pub(crate) async fn remove_instance<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    query: Result<Query<InstancePath>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<wire::AppView>, ApiError> {
    let Query(target) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let row = acting_on(&m, &caller, &name, api::Role::Member).await?;
    Ok(Json(
        change(&m, row, |d, _, _| d.remove(&target.path)).await?,
    ))
}

/// `PUT /v1/apps/{name}/state`.
pub(crate) async fn set_state<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Body(asked): Body<wire::AppInstanceState>,
) -> Result<Json<wire::AppView>, ApiError> {
    let row = acting_on(&m, &caller, &name, api::Role::Member).await?;
    let wanted = deploy::wanted(&asked.state).map_err(refused)?;
    Ok(Json(
        change(&m, row, |d, _, _| d.set_wanted(&asked.path, wanted)).await?,
    ))
}

/// `POST /v1/apps/{name}/undeploy`: every instance but the partitions.
pub(crate) async fn undeploy<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<Json<wire::AppView>, ApiError> {
    let row = acting_on(&m, &caller, &name, api::Role::Member).await?;
    if row.kind == grove_store::CONPAAS {
        return Ok(Json(crate::conpaas::undeploy(&m, &row).await?));
    }
    Ok(Json(
        change(&m, row, |d, _, _| {
            d.undeploy();
            Ok(())
        })
        .await?,
    ))
}

/// `DELETE /v1/apps/{name}`: once undeployed, its partitions are destroyed and it is
/// forgotten.
pub(crate) async fn delete<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = acting_on(&m, &caller, &name, api::Role::Member).await?;
    if row.kind == grove_store::CONPAAS {
        crate::conpaas::delete(&m, &row).await?;
        return Ok(StatusCode::NO_CONTENT);
    }
    let deployment = model(&row)?;
    let (reports, roots) = reports(&m, row.id).await?;
    if !deployment.is_undeployed(&reports) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            api::codes::CONFLICT,
            format!(
                "application {name:?} has deployed instances: `grove app undeploy {name}` first"
            ),
        ));
    }
    for root in roots.keys() {
        destroy_root(&m, &row, &deployment, root).await?;
    }
    m.store.delete_application(row.id).await?;
    m.apps.forget(row.id);
    tracing::info!(application = %name, "application deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// The application and root of the calling partition.
async fn own_root<S: Store>(
    m: &Master<S>,
    caller: &Principal,
) -> Result<(ApplicationRow, String), ApiError> {
    let Principal::Partition { instance, .. } = caller else {
        return Err(ApiError::forbidden(
            "only a root instance's partition asks this",
        ));
    };
    m.store
        .application_of_instance(*instance)
        .await?
        .ok_or_else(|| ApiError::not_found("this partition is no application's root instance"))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PartitionQuery {
    /// Answer once the generation is past this one (or the wait ends).
    after: Option<i64>,
}

/// `GET /v1/apps/partition?after=G`: the caller's subtree, at once or when the
/// application's generation passes `after`.
pub(crate) async fn partition<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    query: Result<Query<PartitionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<wire::AppPartition>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (first, _) = own_root(&m, &caller).await?;
    let mut closing = m.closing.subscribe();
    let deadline = tokio::time::Instant::now() + PARTITION_WAIT;
    loop {
        // The application is watched before it is read, so that a change between the
        // two is not missed; those bound to it as `external` reads them.
        let mut changes = vec![m.apps.subscribe(first.id)];
        let (row, root) = own_root(&m, &caller).await?;
        let deployment = model(&row)?;
        let (external, bound_generations) = external(&m, &deployment, Some(&mut changes)).await?;
        // The document changes with the application and those bound to it.
        let generation = row.generation + bound_generations;
        let fresh = query.after.is_none_or(|after| generation > after);
        if fresh || tokio::time::Instant::now() >= deadline || *closing.borrow() {
            let app = parsed(&m, &row, &deployment).await?;
            let (reports, _) = reports(&m, row.id).await?;
            let instances = deployment
                .targets(&app.graph, &reports, &external)
                .remove(&root)
                .unwrap_or_default()
                .iter()
                .map(deploy::to_wire)
                .collect();
            return Ok(Json(wire::AppPartition {
                application: row.name.clone(),
                root,
                generation,
                archive: deployment.archive.clone(),
                instances,
            }));
        }
        let any_change = futures_any(&mut changes);
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, any_change) => {}
            _ = closing.changed() => {}
        }
    }
}

/// Resolves when any of the watched generations changes.
async fn futures_any(changes: &mut [watch::Receiver<i64>]) {
    let waits = changes.iter_mut().map(|c| Box::pin(c.changed()));
    let _ = futures_util::future::select_all(waits).await;
}

/// `GET /v1/apps/partition/archive`: the application's ZIP, for its scripts.
pub(crate) async fn archive<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    let (row, _) = own_root(&m, &caller).await?;
    let bytes = m
        .store
        .application_archive(row.id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no application {:?}", row.name)))?;
    let headers = [(axum::http::header::CONTENT_TYPE, "application/zip")];
    Ok((headers, bytes).into_response())
}

/// `PUT /v1/apps/partition/report`: the states of the caller's subtree. Removed
/// instances reported gone are forgotten, and the partitions are woken.
pub(crate) async fn report<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Body(report): Body<wire::AppReport>,
) -> Result<StatusCode, ApiError> {
    let (row, root) = own_root(&m, &caller).await?;
    // A partition speaks for its own subtree only.
    if let Some(path) = report
        .instances
        .keys()
        .find(|p| grove_roboconf::instances::root_path(p) != root)
    {
        return Err(ApiError::bad_request(format!(
            "instance {path:?} is not below this partition's root {root:?}"
        )));
    }
    let text = serde_json::to_string(&report).map_err(|e| ApiError::internal(e.to_string()))?;
    let generation = m.store.report_application(row.id, root, text).await?;
    m.apps.bump(row.id, generation);
    m.changes.pulse();
    // Instances removed and now gone leave the model.
    let row = m
        .store
        .application(row.name.clone())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no application {:?}", row.name)))?;
    let mut deployment = model(&row)?;
    let (reports, _) = reports(&m, row.id).await?;
    if deployment.settle(&reports).0 {
        change(&m, row, |_, _, _| Ok(())).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The time and random identifiers commands see.
struct Now<'a>(&'a ring::rand::SystemRandom);

impl exec::Context for Now<'_> {
    fn nanos(&self) -> u128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    }

    fn uuid(&self) -> String {
        let mut bytes = [0u8; 16];
        let _ = ring::rand::SecureRandom::fill(self.0, &mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Runs commands file `command` on the application.
async fn run_command<S: Store>(
    m: &Master<S>,
    row: ApplicationRow,
    command: &str,
) -> Result<wire::AppView, ApiError> {
    change(m, row, |d, app, _| {
        exec::run(command, &app.commands, &app.graph, d, &Now(&m.rng))
            .map(drop)
            .map_err(|e| DeployError::Command(e.to_string()))
    })
    .await
}

/// `POST /v1/apps/{name}/commands`.
pub(crate) async fn command<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Body(asked): Body<wire::AppCommand>,
) -> Result<Json<wire::AppView>, ApiError> {
    let row = acting_on(&m, &caller, &name, api::Role::Member).await?;
    let view = run_command(&m, row, &asked.command).await?;
    tracing::info!(application = %name, command = %asked.command, "commands run");
    Ok(Json(view))
}

/// `POST /v1/apps/partition/events`: the events the caller's probes raised go through
/// the application's autonomic rules; the commands of those that fire run.
pub(crate) async fn events<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Body(raised): Body<wire::AppEvents>,
) -> Result<Json<wire::AppReaction>, ApiError> {
    let (row, root) = own_root(&m, &caller).await?;
    if let Some(e) = raised
        .events
        .iter()
        .find(|e| grove_roboconf::instances::root_path(&e.instance) != root)
    {
        return Err(ApiError::bad_request(format!(
            "instance {:?} is not below this partition's root {root:?}",
            e.instance
        )));
    }
    let deployment = model(&row)?;
    let app = parsed(&m, &row, &deployment).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let commands: Vec<String> = {
        let mut all = lock(&m.apps.autonomic);
        let autonomic = all.entry(row.id).or_default();
        raised
            .events
            .iter()
            .flat_map(|e| {
                tracing::info!(application = %row.name, instance = %e.instance, event = %e.event, cause = %e.cause, "event raised");
                autonomic.raised(&app.rules, &e.event, now)
            })
            .collect()
    };
    for command in &commands {
        let row = m
            .store
            .application(row.name.clone())
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no application {:?}", row.name)))?;
        let name = row.name.clone();
        match run_command(&m, row, command).await {
            Ok(_) => {
                tracing::info!(application = %name, command = %command, "autonomic commands run")
            }
            Err(e) => {
                tracing::warn!(application = %name, command = %command, error = %e.message, "autonomic commands failed");
            }
        }
    }
    Ok(Json(wire::AppReaction { commands }))
}

/// `PUT /v1/apps/{name}/bindings`: the application's external imports under `prefix`
/// resolve from `application`'s published variables (or no longer, with `unbind`).
pub(crate) async fn bind<S: Store>(
    State(m): App<S>,
    Caller(caller): Caller,
    Path(name): Path<String>,
    Body(binding): Body<wire::AppBinding>,
) -> Result<Json<wire::AppView>, ApiError> {
    let row = acting_on(&m, &caller, &name, api::Role::Member).await?;
    let other = acting_on(&m, &caller, &binding.application, api::Role::Reader).await?;
    let other_model = model(&other)?;
    let other_app = parsed(&m, &other, &other_model).await?;
    let dotted = format!("{}.", binding.prefix);
    if !binding.unbind
        && !other_app
            .external_exports
            .values()
            .any(|published| published.starts_with(&dotted))
    {
        return Err(ApiError::bad_request(format!(
            "application {:?} publishes nothing under prefix {:?} (its descriptor's exports-prefix and exports)",
            binding.application, binding.prefix
        )));
    }
    let view = change(&m, row, |d, app, _| {
        let imports_it = app.graph.components.keys().any(|c| {
            app.graph
                .imports(c)
                .iter()
                .any(|i| i.external && i.prefix() == binding.prefix)
        });
        if !imports_it {
            return Err(DeployError::Command(format!(
                "no component imports anything external under prefix {:?}",
                binding.prefix
            )));
        }
        let bound = d.bindings.entry(binding.prefix.clone()).or_default();
        if binding.unbind {
            bound.remove(&binding.application);
        } else {
            bound.insert(binding.application.clone());
        }
        d.bindings.retain(|_, apps| !apps.is_empty());
        Ok(())
    })
    .await?;
    tracing::info!(application = %name, prefix = %binding.prefix, bound = %binding.application, unbind = binding.unbind, "binding changed");
    Ok(Json(view))
}
