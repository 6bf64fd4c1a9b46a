//! Requesting an instance: who it is (requester and title), where it goes (the
//! scheduler's answer among the computers the store narrows down), and which host serves
//! a shared one.

use grove_api as api;
use grove_scheduler::{Ask, COMPUTER_GUID, INSTANCE_GUID, Policy, SIZE};

use super::tree::propagate;
use super::{Placement, touch};
use crate::tx::{FirstFit, FirstFitAsk, Narrow, NewInstance, Tx};
use crate::{Changed, Requester, Result, StoreError};

fn validate(request: &api::InstanceRequest) -> Result<()> {
    if request.title.trim().is_empty() {
        return Err(StoreError::Invalid("title is empty".to_owned()));
    }
    if request.software_release.trim().is_empty() {
        return Err(StoreError::Invalid("software_release is empty".to_owned()));
    }
    if let Some((key, _)) = request
        .sla
        .iter()
        .find(|(k, v)| k.trim().is_empty() || v.is_empty())
    {
        return Err(StoreError::Invalid(format!(
            "sla {key:?}: keys and values must not be empty"
        )));
    }
    if request.shared && request.sla.contains_key(SIZE) {
        return Err(StoreError::Invalid(
            "sla size: a shared instance has no partition of its own to size".to_owned(),
        ));
    }
    Ok(())
}

/// The size the SLA asks for, as the cloud admin defined it.
async fn size_asked(tx: &mut Tx<'_>, request: &api::InstanceRequest) -> Result<Option<api::Size>> {
    let Some(name) = request.sla.get(SIZE) else {
        return Ok(None);
    };
    match tx.size(name).await? {
        Some(size) => Ok(Some(size)),
        None => Err(StoreError::Invalid(format!(
            "sla size: no size {name:?} (the cloud admin defines them: grove size create)"
        ))),
    }
}

/// Requests an instance: creates it, or updates the one the requester has by that title.
pub(super) async fn request(
    tx: &mut Tx<'_>,
    placement: &mut Placement,
    owner: i64,
    requester: Requester,
    request: api::InstanceRequest,
    try_first_fit: bool,
    changed: &mut Changed,
) -> Result<api::Instance> {
    validate(&request)?;
    let (requester_key, parent, project) = match requester {
        Requester::User(id) => (format!("user:{id}"), None, None),
        Requester::Project { project, .. } => (format!("project:{project}"), None, Some(project)),
        Requester::Instance(id) => {
            // A child is in its parent's project.
            let parent = tx.existing(id).await?;
            (
                format!("instance:{id}"),
                Some(parent.instance),
                parent.project_id,
            )
        }
    };
    // A child of a root that is not started takes the root's state.
    let mut state = request.state;
    if let Some(parent) = &parent
        && let Some(root_state) = tx.requested_state(parent.root).await?
        && let Some(root_state) = api::RequestedState::parse(&root_state)
        && root_state != api::RequestedState::Started
    {
        state = root_state;
    }
    if try_first_fit
        && parent.is_none()
        && !request.shared
        && state != api::RequestedState::Destroyed
        && let Some(most_used_first) = first_fit(placement.policy, &request)
        // An unknown size is the general path's to refuse, or to keep for an instance
        // given it before it was deleted.
        && let Some(size) = match size_asked(tx, &request).await {
            Ok(size) => Some(size),
            Err(StoreError::Invalid(_)) => None,
            Err(e) => return Err(e),
        }
    {
        let timestamp = tx.timestamp();
        let new = NewInstance {
            owner,
            requester: &requester_key,
            parent: None,
            root: None,
            project,
            request: &request,
            state,
            timestamp,
            size: size.as_ref(),
        };
        let computer_guid = request.sla.get(COMPUTER_GUID).map(String::as_str);
        if project.is_some() || size.is_some() {
            if let Some(mut fit) = tx
                .insert_first_fit_extended(&new, computer_guid, most_used_first)
                .await?
            {
                if let Some(project) = project {
                    fit.project = Some(tx.project(project).await?.name);
                }
                changed.computer(fit.computer);
                return Ok(placed(fit, request, state, timestamp));
            }
        } else if let Some(fit) = tx
            .insert_first_fit(&new, computer_guid, most_used_first)
            .await?
        {
            changed.computer(fit.computer);
            return Ok(placed(fit, request, state, timestamp));
        }
    }
    let id = match tx.identify(&requester_key, &request.title).await? {
        Some(id) => {
            update(tx, id, &request, state, changed).await?;
            id
        }
        None => {
            if state == api::RequestedState::Destroyed {
                return Err(StoreError::NotFound(format!(
                    "no instance {:?} to destroy",
                    request.title
                )));
            }
            let size = size_asked(tx, &request).await?;
            if let Some(project) = project {
                super::projects::check_quota(tx, project, request.shared, size.as_ref()).await?;
            }
            // Placed before it is inserted: a request that fits nowhere leaves nothing.
            let spot = if request.shared {
                None
            } else {
                Some(
                    choose(
                        tx,
                        placement,
                        owner,
                        project,
                        size.as_ref(),
                        &request.software_release,
                        &request.sla,
                    )
                    .await?,
                )
            };
            let timestamp = tx.timestamp();
            let id = tx
                .insert_instance(&NewInstance {
                    owner,
                    requester: &requester_key,
                    parent: parent.as_ref().map(|p| p.id),
                    // A root's root_id stays empty: it is its own root.
                    root: parent.as_ref().map(|p| p.root),
                    project,
                    request: &request,
                    state,
                    timestamp,
                    size: size.as_ref(),
                })
                .await?;
            match spot {
                Some(spot) => take(tx, id, spot, changed).await?,
                None => attach_to_host(tx, owner, id, changed).await?,
            }
            return Ok(tx.existing(id).await?.instance);
        }
    };
    let loaded = tx.existing(id).await?;
    if state != api::RequestedState::Destroyed && loaded.computer_id.is_none() {
        if loaded.instance.shared {
            attach_to_host(tx, owner, id, changed).await?;
        } else {
            let instance = &loaded.instance;
            let size = tx.instance_size(id).await?;
            let spot = choose(
                tx,
                placement,
                owner,
                loaded.project_id,
                size.as_ref(),
                &instance.software_release,
                &instance.sla,
            )
            .await?;
            take(tx, id, spot, changed).await?;
        }
        return Ok(tx.existing(id).await?.instance);
    }
    Ok(loaded.instance)
}

/// Requesting an existing instance again: what differs is written and shown to its node,
/// its host and, for a stop or a destroy, its children.
async fn update(
    tx: &mut Tx<'_>,
    id: i64,
    request: &api::InstanceRequest,
    state: api::RequestedState,
    changed: &mut Changed,
) -> Result<()> {
    let loaded = tx.existing(id).await?;
    let current = &loaded.instance;
    // A request that names no size (a stop, a destroy) keeps the one the instance has.
    let kept;
    let request = match current.sla.get(SIZE) {
        Some(size) if !request.sla.contains_key(SIZE) => {
            let mut with_size = request.clone();
            with_size.sla.insert(SIZE.to_owned(), size.clone());
            kept = with_size;
            &kept
        }
        _ => request,
    };
    if current.sla.get(SIZE) != request.sla.get(SIZE) && loaded.computer_id.is_some() {
        return Err(StoreError::Conflict(format!(
            "instance {:?} is placed with {}: its size does not change; destroy it and \
             request it again",
            request.title,
            match current.sla.get(SIZE) {
                Some(size) => format!("size {size}"),
                None => "no size".to_owned(),
            }
        )));
    }
    if current.shared != request.shared {
        return Err(StoreError::Conflict(format!(
            "instance {:?} is {}shared; request it again the same way",
            request.title,
            if current.shared { "" } else { "not " }
        )));
    }
    let differs = current.software_release != request.software_release
        || current.software_type != request.software_type
        || current.parameters != request.parameters
        || current.requested_state != state
        || current.sla != request.sla;
    if !differs {
        return Ok(());
    }
    tx.update_request(id, request, state).await?;
    if let Some(computer) = loaded.computer_id {
        tx.bump(computer, 0, 0).await?;
        changed.computer(computer);
    }
    if let Some(host) = current.host_instance {
        touch(tx, host, changed).await?;
    }
    if state != api::RequestedState::Started && current.requested_state != state {
        propagate(tx, id, state, changed).await?;
    }
    Ok(())
}

/// Where a new instance goes: a computer and its free partition.
#[derive(Debug)]
struct Spot {
    computer: i64,
    partition: String,
}

/// The store narrows the candidates with what its indexes answer fast, in the policy's
/// order when a weigher is a plain order; the scheduler has the last word. When nothing
/// is left, every computer goes through the scheduler's filters again, so that the
/// answer names the one that removed the last candidates.
#[allow(clippy::too_many_arguments)]
async fn choose(
    tx: &mut Tx<'_>,
    placement: &mut Placement,
    owner: i64,
    project: Option<i64>,
    size: Option<&api::Size>,
    software_release: &str,
    sla: &std::collections::BTreeMap<String, String>,
) -> Result<Spot> {
    let needs = size.map(api::Size::resources);
    let ask = Ask {
        requester: owner,
        project,
        size: size.map(|s| {
            (
                s.name.clone(),
                grove_scheduler::Room {
                    millicores: s.millicores,
                    memory: s.memory,
                    disk: s.disk,
                },
            )
        }),
        software_release: software_release.to_owned(),
        sla: sla.clone(),
    };
    let labelled = asks_labels(sla);
    let policy = placement.policy;
    let ordered = plain_order(policy);
    let narrow = Narrow {
        owner,
        software_release,
        // Spreading counts the requester's instances on every computer it may use, full or
        // not, and the scheduler filters.
        computer_guid: sla
            .get(COMPUTER_GUID)
            .filter(|_| policy != Policy::Zone)
            .map(String::as_str),
        fit_only: policy != Policy::Zone,
        most_used_first: ordered,
        count_owner: policy == Policy::Zone,
        // Labels are matched by the scheduler: the first rows may not carry them.
        limit: (ordered.is_some() && !labelled).then_some(1),
        project,
        needs,
    };
    let candidates = tx.candidates(&narrow).await?;
    let chosen = match grove_scheduler::place(&ask, &candidates, policy, &mut placement.dice) {
        Ok(chosen) => chosen.id,
        Err(no) if !narrow.fit_only => return Err(StoreError::NoCapacity(no.to_string())),
        Err(_) => {
            let everything = tx
                .candidates(&Narrow {
                    computer_guid: None,
                    fit_only: false,
                    most_used_first: None,
                    count_owner: false,
                    limit: None,
                    ..narrow
                })
                .await?;
            let message = match grove_scheduler::fitting(&ask, &everything) {
                Err(no) => no.to_string(),
                Ok(_) => format!("no free partition with {software_release} supplied"),
            };
            return Err(StoreError::NoCapacity(message));
        }
    };
    let partition = tx.free_partition(chosen).await?.ok_or_else(|| {
        StoreError::NoCapacity(format!(
            "no free partition with {software_release} supplied"
        ))
    })?;
    Ok(Spot {
        computer: chosen,
        partition,
    })
}

/// Gives the partition to the instance.
async fn take(tx: &mut Tx<'_>, id: i64, spot: Spot, changed: &mut Changed) -> Result<()> {
    tx.place(id, spot.computer, &spot.partition, None).await?;
    tx.occupy(spot.computer, &spot.partition, id).await?;
    tx.allocate(spot.computer, id, 1).await?;
    changed.computer(spot.computer);
    Ok(())
}

/// The policy's weigher when it is a plain order of the used partitions: fewest first
/// (`simple`: `Some(false)`) or most first (`pack`: `Some(true)`).
fn plain_order(policy: Policy) -> Option<bool> {
    match policy {
        Policy::Simple => Some(false),
        Policy::Pack => Some(true),
        Policy::Chance | Policy::Zone => None,
    }
}

fn asks_labels(sla: &std::collections::BTreeMap<String, String>) -> bool {
    sla.keys().any(|key| grove_scheduler::is_label(key))
}

/// Whether a user's new instance takes the fast path (`Tx::insert_first_fit`): when the
/// policy is a plain order and no label is asked for, the scheduler's choice is the first
/// row of that order.
fn first_fit(policy: Policy, request: &api::InstanceRequest) -> Option<bool> {
    if asks_labels(&request.sla) {
        return None;
    }
    plain_order(policy)
}

/// Whether a request may go with others through the fast path at once
/// ([`first_fits`]): a valid request of a user (or in a project) for a new-or-not,
/// unshared instance that the policy places by a plain order.
pub(super) fn batchable(
    policy: Policy,
    requester: &Requester,
    request: &api::InstanceRequest,
) -> bool {
    matches!(requester, Requester::User(_) | Requester::Project { .. })
        && !request.shared
        && request.state != api::RequestedState::Destroyed
        && validate(request).is_ok()
        && first_fit(policy, request).is_some()
}

/// The fast path for several [`batchable`] requests of users at once, in order: for each,
/// the instance when it placed it. A request it did not place (its title exists, or
/// nothing fits) goes through [`request`] without the fast path.
pub(super) async fn first_fits(
    tx: &mut Tx<'_>,
    placement: &Placement,
    requests: &[(i64, &Requester, &api::InstanceRequest)],
) -> Result<Vec<Option<(api::Instance, i64)>>> {
    // The sizes, read once for the batch; on PostgreSQL the writer's session function
    // reads them itself, saving the writer a round trip.
    let read_sizes = tx.backend == crate::backend::Backend::Sqlite;
    let sizes: std::collections::BTreeMap<String, api::Size> =
        if read_sizes && requests.iter().any(|(_, _, r)| r.sla.contains_key(SIZE)) {
            tx.sizes()
                .await?
                .into_iter()
                .map(|s| (s.name.clone(), s))
                .collect()
        } else {
            Default::default()
        };
    let mut keyed = Vec::with_capacity(requests.len());
    for (owner, requester, request) in requests {
        let (key, project) = match requester {
            Requester::User(user) => (format!("user:{user}"), None),
            Requester::Project { project, .. } => (format!("project:{project}"), Some(*project)),
            Requester::Instance(_) => {
                return Err(StoreError::Invalid(
                    "a partition's requests are not placed together".to_owned(),
                ));
            }
        };
        // An unknown size is the general path's to answer.
        let size = match request.sla.get(SIZE) {
            Some(name) if read_sizes => sizes.get(name).cloned().map(Some),
            _ => Some(None),
        };
        keyed.push((*owner, key, project, size, *request));
    }
    let mut asks = Vec::with_capacity(keyed.len());
    let mut fast = Vec::with_capacity(keyed.len());
    for (owner, key, project, size, request) in &keyed {
        fast.push(size.is_some());
        asks.push(FirstFitAsk {
            new: NewInstance {
                owner: *owner,
                requester: key,
                parent: None,
                root: None,
                project: *project,
                request,
                state: request.state,
                timestamp: tx.timestamp(),
                size: size.as_ref().and_then(Option::as_ref),
            },
            size_name: request.sla.get(SIZE).map(String::as_str),
            computer_guid: request.sla.get(COMPUTER_GUID).map(String::as_str),
            most_used_first: first_fit(placement.policy, request).unwrap_or(false),
        });
    }
    // Those whose size does not read are left to the general path.
    let fits = tx.insert_first_fits(&asks, &fast).await?;
    // The projects' names: as the requests name them (the master found each project by
    // that name), read once for the batch otherwise.
    let mut names: std::collections::BTreeMap<i64, String> = Default::default();
    for ask in &asks {
        let Some(project) = ask.new.project else {
            continue;
        };
        if let std::collections::btree_map::Entry::Vacant(entry) = names.entry(project) {
            match &ask.new.request.project {
                Some(name) => entry.insert(name.clone()),
                None => entry.insert(tx.project(project).await?.name),
            };
        }
    }
    Ok(fits
        .into_iter()
        .zip(asks)
        .map(|(fit, ask)| {
            fit.map(|mut fit| {
                fit.project = ask.new.project.and_then(|p| names.get(&p).cloned());
                let computer = fit.computer;
                let instance = placed(
                    fit,
                    ask.new.request.clone(),
                    ask.new.state,
                    ask.new.timestamp,
                );
                (instance, computer)
            })
        })
        .collect())
}

/// The instance the fast path created, as the store now holds it.
fn placed(
    fit: FirstFit,
    request: api::InstanceRequest,
    state: api::RequestedState,
    timestamp: i64,
) -> api::Instance {
    api::Instance {
        id: fit.id,
        title: request.title,
        software_release: request.software_release,
        software_type: request.software_type,
        parameters: request.parameters,
        requested_state: state,
        shared: false,
        sla: request.sla,
        project: fit.project,
        computer: Some(fit.reference),
        partition: Some(fit.partition),
        host_instance: None,
        parent: None,
        root: fit.id,
        reported_state: None,
        error: None,
        connection: api::Parameters::new(),
        timestamp,
        reported_timestamp: None,
    }
}

/// A shared instance gets no partition: it is attached to a started instance of the same
/// software release and type, which serves it.
async fn attach_to_host(tx: &mut Tx<'_>, owner: i64, id: i64, changed: &mut Changed) -> Result<()> {
    let instance = tx.existing(id).await?.instance;
    let host = match instance.sla.get(INSTANCE_GUID) {
        Some(text) => Some(text.parse::<i64>().map_err(|_| {
            StoreError::Invalid(format!("sla instance_guid {text:?} is not an instance id"))
        })?),
        None => None,
    };
    let computer_guid = instance.sla.get(COMPUTER_GUID).map(String::as_str);
    let Some((host, computer, partition)) =
        tx.host_for(owner, &instance, computer_guid, host).await?
    else {
        return Err(StoreError::NoCapacity(format!(
            "no started instance of {} (type {}) to host a shared instance",
            instance.software_release, instance.software_type
        )));
    };
    tx.place(id, computer, &partition, Some(host)).await?;
    touch(tx, host, changed).await
}
