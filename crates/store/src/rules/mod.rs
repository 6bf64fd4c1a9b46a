//! The rules of the desired state, once, over the transaction interface (`tx.rs`).
//!
//! Each mutation the master asks for is an [`Op`]; [`apply`] runs it inside the writer's
//! transaction and returns its own answer with what it [`Changed`]: which computers have
//! a new revision (their nodes wake) and which documents are stale. Nothing else in the
//! store or the master decides what changed.
//!
//! - `request.rs`: identity of a request, placement (through `grove-scheduler`), shared
//!   instances.
//! - `tree.rs`: state propagation down a tree, children garbage collection, publishing,
//!   reports and freeing a partition.
//! - `nodes.rs`: what nodes declare and report: partitions, software, usage.
//! - `joining.rs`: join tokens, and the certificate each computer's node holds.
//! - `projects.rs`: a project's quota, checked where an instance is created.

mod joining;
mod nodes;
mod projects;
mod request;
mod tree;

use std::collections::BTreeMap;

use grove_api as api;
use grove_scheduler::{Policy, SeededDice};

use crate::tx::{Holder, Tx};
use crate::{Changed, Requester, Result};

/// The setting that maps ConPaaS service types to the releases the admin registered.
pub(crate) const APP_TYPES: &str = "conpaas_types";

/// A mutation.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    EnsureAdmin(Vec<u8>),
    /// A value every master sharing the store uses (the first proposed is kept).
    Shared(&'static str, String),
    CreateJoinToken {
        owner: i64,
        hash: Vec<u8>,
        labels: BTreeMap<String, String>,
        expires_at: i64,
    },
    Join {
        hash: Vec<u8>,
        reference: String,
        serial: String,
        now: i64,
    },
    SetCertificate(i64, Option<String>),
    SetUserCertificate(i64, Option<String>),
    /// The certificate an instance's partition holds (the instance must not be
    /// destroyed).
    SetInstanceCertificate(i64, Option<String>),
    CreateUser(String, Vec<u8>),
    CreateComputer(String, i64, Vec<u8>, BTreeMap<String, String>),
    SetLabels(i64, BTreeMap<String, String>),
    DeclarePartitions(i64, Vec<api::PartitionDeclaration>),
    Supply(i64, api::Supply),
    ReportSoftware(i64, api::SoftwareReport),
    Request(i64, Requester, api::InstanceRequest),
    ReportInstance(i64, api::StateReport),
    Publish(i64, api::Parameters),
    SetChildren(i64, Vec<String>),
    Usage(i64, api::UsageReport),
    CreateProject(String),
    DeleteProject(i64),
    SetMember(i64, i64, Option<api::Role>),
    SetQuota(i64, api::Quota),
    SetCredit(i64, Option<String>),
    CreateSize(api::Size),
    DeleteSize(String),
    SetCapacity(i64, api::Capacity),
    /// Dedicates a computer to a project, or (`None`) shares it again.
    DedicateComputer(i64, Option<i64>),
    /// A value the cloud admin sets, and sets again (the price list).
    SetSetting(&'static str, String),
    CreateApplication(crate::apps::NewApplication),
    /// A new model for an application still at this generation, and its root instances.
    UpdateApplication {
        id: i64,
        generation: i64,
        model: String,
        roots: Vec<String>,
    },
    SetApplicationRoot {
        id: i64,
        root: String,
        instance: i64,
    },
    ReportApplication {
        id: i64,
        root: String,
        report: String,
    },
    DeleteApplication(i64),
    /// The software release a ConPaaS service type runs (none: Grove's own again), in the
    /// map of them kept as one setting, changed in the writer's transaction.
    SetAppType(String, Option<String>),
    /// An action asked of an instance: its node wakes to run it.
    RequestAction {
        instance: i64,
        name: String,
        parameters: api::Parameters,
    },
    /// How an action ended, as the node hosting its instance reports it.
    FinishAction(i64, api::actions::ActionOutcome),
    /// A rule that panics, for the writer's test of what follows a panic.
    #[cfg(test)]
    Panic,
}

/// What a mutation answers, beside what it changed.
#[derive(Debug)]
pub(crate) enum Answer {
    Nothing,
    Created(i64),
    Existing,
    Key(String),
    Instance(Box<api::Instance>),
}

/// How instances are placed: the policy, and dice for the one that rolls them.
#[derive(Debug)]
pub(crate) struct Placement {
    pub(crate) policy: Policy,
    pub(crate) dice: SeededDice,
}

/// Runs one mutation.
pub(crate) async fn apply(
    tx: &mut Tx<'_>,
    placement: &mut Placement,
    op: Op,
) -> Result<(Answer, Changed)> {
    apply_op(tx, placement, op, true).await
}

/// How many of `ops`, from the first, may be placed together by [`first_fits`].
pub(crate) fn first_fit_run(placement: &Placement, ops: &[Op]) -> usize {
    ops.iter()
        .take_while(|op| {
            matches!(op, Op::Request(_, requester, request)
                if request::batchable(placement.policy, requester, request))
        })
        .count()
}

/// Runs a run of requests [`first_fit_run`] counted, the fast path for all at once: each
/// the fast path places is answered; the others then go through the general path, in
/// order. (A batch's requests arrive together: placing the fast ones first is an order
/// they could have come in.)
pub(crate) async fn first_fits(
    tx: &mut Tx<'_>,
    placement: &mut Placement,
    ops: &[Op],
) -> Result<Vec<Result<(Answer, Changed)>>> {
    let requests: Vec<(i64, &Requester, &api::InstanceRequest)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Request(owner, requester, request) => Some((*owner, requester, request)),
            _ => None,
        })
        .collect();
    if requests.len() != ops.len() {
        return Err(crate::StoreError::Invalid(
            "only requests are placed together".to_owned(),
        ));
    }
    let fits = request::first_fits(tx, placement, &requests).await?;
    let mut out = Vec::with_capacity(ops.len());
    for (op, fit) in ops.iter().zip(fits) {
        out.push(match fit {
            Some((instance, computer)) => {
                let mut changed = Changed::default();
                changed.computer(computer);
                Ok((Answer::Instance(Box::new(instance)), changed))
            }
            None => apply_op(tx, placement, op.clone(), false).await,
        });
    }
    Ok(out)
}

async fn apply_op(
    tx: &mut Tx<'_>,
    placement: &mut Placement,
    op: Op,
    try_first_fit: bool,
) -> Result<(Answer, Changed)> {
    let mut changed = Changed::default();
    let answer = match op {
        Op::EnsureAdmin(hash) => {
            if tx.admin_exists().await? {
                Answer::Existing
            } else {
                Answer::Created(tx.insert_principal("admin", "admin", hash).await?)
            }
        }
        Op::Shared(name, proposed) => match tx.setting(name).await? {
            Some(value) => Answer::Key(value),
            None => {
                tx.set_setting(name, &proposed).await?;
                Answer::Key(proposed)
            }
        },
        Op::CreateJoinToken {
            owner,
            hash,
            labels,
            expires_at,
        } => Answer::Created(joining::create_token(tx, owner, &hash, &labels, expires_at).await?),
        Op::Join {
            hash,
            reference,
            serial,
            now,
        } => Answer::Created(joining::join(tx, &hash, &reference, &serial, now).await?),
        Op::SetCertificate(computer, serial) => {
            joining::set_certificate(tx, computer, serial.as_deref()).await?;
            Answer::Nothing
        }
        Op::SetUserCertificate(principal, serial) => {
            tx.set_certificate_serial(Holder::Principal, principal, serial.as_deref())
                .await?;
            Answer::Nothing
        }
        Op::SetInstanceCertificate(instance, serial) => {
            joining::set_instance_certificate(tx, instance, serial.as_deref()).await?;
            Answer::Nothing
        }
        Op::CreateUser(name, hash) => {
            Answer::Created(tx.insert_principal("user", &name, hash).await?)
        }
        Op::CreateComputer(reference, owner, hash, labels) => {
            Answer::Created(tx.insert_computer(&reference, owner, hash, &labels).await?)
        }
        Op::SetLabels(computer, labels) => {
            tx.set_labels(computer, &labels).await?;
            Answer::Nothing
        }
        Op::DeclarePartitions(computer, partitions) => {
            nodes::declare_partitions(tx, computer, &partitions, &mut changed).await?;
            Answer::Nothing
        }
        Op::Supply(computer, supply) => {
            nodes::supply(tx, computer, &supply, &mut changed).await?;
            Answer::Nothing
        }
        Op::ReportSoftware(computer, report) => {
            nodes::report_software(tx, computer, &report, &mut changed).await?;
            Answer::Nothing
        }
        Op::Request(owner, requester, request) => {
            let instance = request::request(
                tx,
                placement,
                owner,
                requester,
                request,
                try_first_fit,
                &mut changed,
            )
            .await?;
            Answer::Instance(Box::new(instance))
        }
        Op::ReportInstance(id, report) => {
            tree::report(tx, id, &report, &mut changed).await?;
            Answer::Nothing
        }
        Op::Publish(id, parameters) => {
            tree::publish(tx, id, &parameters, &mut changed).await?;
            Answer::Nothing
        }
        Op::SetChildren(parent, titles) => {
            tree::keep_children(tx, parent, &titles, &mut changed).await?;
            Answer::Nothing
        }
        Op::Usage(computer, report) => {
            nodes::record_usage(tx, computer, &report).await?;
            Answer::Nothing
        }
        Op::CreateProject(name) => Answer::Created(tx.insert_project(&name).await?),
        Op::DeleteProject(project) => {
            tx.delete_project(project).await?;
            Answer::Nothing
        }
        Op::SetMember(project, principal, role) => {
            tx.set_member(project, principal, role).await?;
            Answer::Nothing
        }
        Op::SetQuota(project, quota) => {
            tx.set_quota(project, &quota).await?;
            Answer::Nothing
        }
        Op::SetCredit(project, credit) => {
            tx.set_credit(project, credit.as_deref()).await?;
            Answer::Nothing
        }
        Op::CreateSize(size) => {
            tx.insert_size(&size).await?;
            Answer::Nothing
        }
        Op::DeleteSize(name) => {
            tx.delete_size(&name).await?;
            Answer::Nothing
        }
        Op::SetCapacity(computer, capacity) => {
            tx.set_capacity(computer, &capacity).await?;
            Answer::Nothing
        }
        Op::DedicateComputer(computer, project) => {
            tx.set_computer_project(computer, project).await?;
            Answer::Nothing
        }
        Op::SetSetting(name, value) => {
            tx.set_setting(name, &value).await?;
            Answer::Nothing
        }
        // Applications change no computer: their root partitions wait on the
        // application's generation, which other masters hear of as `applications`.
        Op::CreateApplication(new) => Answer::Created(tx.insert_application(&new).await?),
        Op::UpdateApplication {
            id,
            generation,
            model,
            roots,
        } => {
            changed.application(id);
            Answer::Created(
                tx.update_application(id, generation, &model, &roots)
                    .await?,
            )
        }
        Op::SetApplicationRoot { id, root, instance } => {
            tx.set_application_root(id, &root, instance).await?;
            Answer::Nothing
        }
        Op::ReportApplication { id, root, report } => {
            changed.application(id);
            Answer::Created(tx.report_application(id, &root, &report).await?)
        }
        Op::DeleteApplication(id) => {
            changed.application(id);
            tx.delete_application(id).await?;
            Answer::Nothing
        }
        Op::SetAppType(name, release) => {
            let mut types: BTreeMap<String, String> = match tx.setting(APP_TYPES).await? {
                Some(text) => serde_json::from_str(&text).unwrap_or_default(),
                None => BTreeMap::new(),
            };
            match release {
                Some(release) => types.insert(name, release),
                None => types.remove(&name),
            };
            let text = serde_json::to_string(&types).unwrap_or_else(|_| "{}".to_owned());
            tx.set_setting(APP_TYPES, &text).await?;
            Answer::Nothing
        }
        Op::RequestAction {
            instance,
            name,
            parameters,
        } => {
            let loaded = tx.existing(instance).await?;
            if let Some(why) = crate::actions::refusal(&loaded) {
                return Err(crate::StoreError::Conflict(why));
            }
            let id = tx.insert_action(instance, &name, &parameters).await?;
            if let Some(computer) = loaded.computer_id {
                tx.bump(computer, 0, 0).await?;
                changed.computer(computer);
            }
            Answer::Created(id)
        }
        Op::FinishAction(id, outcome) => {
            if let Some(instance) = tx.finish_action(id, &outcome).await? {
                changed.action(id);
                if let Some(computer) = tx.existing(instance).await?.computer_id {
                    changed.document(computer);
                }
            }
            Answer::Nothing
        }
        #[cfg(test)]
        Op::Panic => panic!("a rule panicked, as the test asked"),
    };
    Ok((answer, changed))
}

/// Marks an instance as changed: a new timestamp, and a new revision of its computer.
pub(crate) async fn touch(tx: &mut Tx<'_>, id: i64, changed: &mut Changed) -> Result<()> {
    if let Some(computer) = tx.retimestamp(id).await? {
        tx.bump(computer, 0, 0).await?;
        changed.computer(computer);
    }
    Ok(())
}
