//! The agent's decisions, as data: what it remembers ([`Memory`]), what there is to do
//! ([`Work`], from [`due`]), when to look again ([`next_wake`]), and what a finished piece
//! of work changes in its memory ([`Memory::settle`]). Nothing here does IO or reads the
//! clock: the event loop (`crate::Agent::run`) owns the memory, gathers the [`Facts`] from
//! the disk, passes the time, and carries the work out.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use grove_api as api;

/// What a piece of work is about: two pieces about the same thing never run at once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Key {
    Software(String),
    Partition(String),
    /// An instance action runs beside its partition's other work.
    Action(i64),
}

/// A service in a partition: the supervisor knows it as `partition/service`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ServiceName {
    pub(crate) partition: String,
    pub(crate) service: String,
}

impl ServiceName {
    pub(crate) fn new(partition: &str, service: &str) -> ServiceName {
        ServiceName {
            partition: partition.to_owned(),
            service: service.to_owned(),
        }
    }

    /// Reads the supervisor's name back; none for a name of another shape.
    pub(crate) fn parse(name: &str) -> Option<ServiceName> {
        let (partition, service) = name.split_once('/')?;
        Some(ServiceName::new(partition, service))
    }

    pub(crate) fn is_in(name: &str, partition: &str) -> bool {
        ServiceName::parse(name).is_some_and(|n| n.partition == partition)
    }
}

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.partition, self.service)
    }
}

/// A retry of something that failed: when, and the delay that led there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    pub(crate) at: Instant,
    pub(crate) backoff: Duration,
}

impl Retry {
    /// The next retry after `previous`, the delay doubled up to `max`.
    pub(crate) fn after(
        previous: Option<Retry>,
        now: Instant,
        first: Duration,
        max: Duration,
    ) -> Retry {
        let backoff = previous.map_or(first, |r| (r.backoff * 2).min(max));
        Retry {
            at: now + backoff,
            backoff,
        }
    }
}

/// Delays of the retries, and how often promises are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    pub(crate) first_retry: Duration,
    pub(crate) max_retry: Duration,
    pub(crate) build_first_retry: Duration,
    pub(crate) build_max_retry: Duration,
    pub(crate) promise_interval: Duration,
}

/// What the agent knows it did with a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Done {
    pub(crate) instance: i64,
    pub(crate) timestamp: i64,
    pub(crate) state: api::RequestedState,
    pub(crate) at: Instant,
    /// How often it is processed again when nothing changes (none: never).
    pub(crate) periodicity: Option<Duration>,
    /// Set when the last processing failed.
    pub(crate) retry: Option<Retry>,
    /// When its promises were last checked (between deployments).
    pub(crate) checked: Instant,
}

impl Done {
    fn is_for(&self, instance: &api::PartitionInstance) -> bool {
        self.instance == instance.id
            && self.timestamp == instance.timestamp
            && self.state == instance.requested_state
    }
}

/// What the agent remembers of a software release.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SoftwareMemory {
    /// The next attempt, after a failure.
    pub(crate) retry: Option<Retry>,
    /// What it reported since the desired state last said otherwise.
    pub(crate) reported: Option<api::SoftwareState>,
}

/// An action the agent ran: it is never run again, and its outcome is kept until the
/// master took it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ActionMemory {
    /// The outcome the master did not take yet, and when to tell it again.
    pub(crate) unreported: Option<(api::actions::ActionOutcome, Retry)>,
}

/// The agent's memory: a cache of what it did, rebuilt by processing everything again
/// after a restart.
#[derive(Debug, Default)]
pub(crate) struct Memory {
    /// The last desired state the master sent (or the one kept on disk).
    pub(crate) desired: Option<api::DesiredState>,
    pub(crate) software: HashMap<String, SoftwareMemory>,
    pub(crate) partitions: HashMap<String, Done>,
    /// The actions run since the master last listed them as pending.
    pub(crate) actions: HashMap<i64, ActionMemory>,
    /// Work under way: not started twice.
    pub(crate) busy: HashSet<Key>,
    /// Whether the master was unreachable at the last call.
    pub(crate) offline: bool,
    /// Whether the master has answered since the agent started.
    pub(crate) reached: bool,
}

/// What the disk says, gathered before planning.
#[derive(Debug, Default, Clone)]
pub(crate) struct Facts {
    /// Software releases installed (`.completed`).
    pub(crate) installed: HashSet<String>,
    /// Software releases with a directory (installed or not).
    pub(crate) present: HashSet<String>,
    /// The partitions formatted here.
    pub(crate) slots: HashSet<String>,
    /// Partitions where a previous agent left services running, not processed since.
    pub(crate) occupied: HashSet<String>,
}

/// Something to do.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Work {
    /// Build a release (it reports building, then available or error).
    Build(String),
    /// Tell the master a release is available (it was installed already).
    ReportAvailable(String),
    /// Remove a release and report it destroyed.
    Remove(String),
    /// Run the instance profile, start the services, check the promises.
    Deploy(String, api::PartitionInstance),
    Stop(String, api::PartitionInstance),
    Destroy(String, api::PartitionInstance),
    /// The master freed the partition: end whatever ran there.
    Free(String),
    /// Check the promises of a started, idle partition.
    CheckPromises(String, api::PartitionInstance),
    /// Run an instance's action in its partition and report how it ended.
    RunAction(String, api::actions::PendingAction),
    /// Report again how an action ended.
    ReportAction(i64, api::actions::ActionOutcome),
}

impl Work {
    pub(crate) fn key(&self) -> Key {
        match self {
            Work::Build(url) | Work::ReportAvailable(url) | Work::Remove(url) => {
                Key::Software(url.clone())
            }
            Work::Deploy(reference, _)
            | Work::Stop(reference, _)
            | Work::Destroy(reference, _)
            | Work::Free(reference)
            | Work::CheckPromises(reference, _) => Key::Partition(reference.clone()),
            Work::RunAction(_, action) => Key::Action(action.id),
            Work::ReportAction(id, _) => Key::Action(*id),
        }
    }

    /// Whether it acts on a software release (the software pass) or a partition.
    pub(crate) fn is_software(&self) -> bool {
        matches!(self.key(), Key::Software(_))
    }
}

/// How a piece of work ended.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    Software {
        url: String,
        /// The build's result, when there was one.
        built: Option<bool>,
        /// The last state the master accepted from this work.
        reported: Option<api::SoftwareState>,
        /// A report the master did not take (it may be away).
        report_failed: bool,
    },
    Partition {
        reference: String,
        instance: api::PartitionInstance,
        ok: bool,
        periodicity: Option<Duration>,
    },
    Freed(String),
    Promises {
        reference: String,
        instance: api::PartitionInstance,
        ok: bool,
    },
    /// An action ran (or its outcome was reported again); the outcome when the master did
    /// not take it.
    Action {
        id: i64,
        unreported: Option<api::actions::ActionOutcome>,
    },
}

/// Everything that is due now, one piece per software release or partition, none of
/// what is under way.
pub(crate) fn due(memory: &Memory, facts: &Facts, timing: &Timing, now: Instant) -> Vec<Work> {
    let Some(desired) = &memory.desired else {
        return Vec::new();
    };
    let mut work = Vec::new();
    for software in &desired.software {
        let url = &software.software_release;
        let remembered = memory.software.get(url).copied().unwrap_or_default();
        if remembered.retry.is_some_and(|r| r.at > now) {
            continue;
        }
        let reported = remembered.reported.or(software.reported_state);
        let next = match software.requested_state {
            api::SupplyState::Available if !facts.installed.contains(url) => {
                Some(Work::Build(url.clone()))
            }
            api::SupplyState::Available => (reported != Some(api::SoftwareState::Available))
                .then(|| Work::ReportAvailable(url.clone())),
            api::SupplyState::Destroyed => (facts.present.contains(url)
                || reported != Some(api::SoftwareState::Destroyed))
            .then(|| Work::Remove(url.clone())),
        };
        work.extend(next);
    }
    for partition in &desired.partitions {
        let reference = &partition.reference;
        if !facts.slots.contains(reference) {
            continue;
        }
        let next = match &partition.instance {
            None => (memory.partitions.contains_key(reference)
                || facts.occupied.contains(reference))
            .then(|| Work::Free(reference.clone())),
            Some(instance) => partition_work(memory, facts, timing, reference, instance, now),
        };
        work.extend(next);
        if let Some(instance) = &partition.instance {
            work.extend(action_work(memory, reference, instance, now));
        }
    }
    work.retain(|w| !memory.busy.contains(&w.key()));
    work
}

fn partition_work(
    memory: &Memory,
    facts: &Facts,
    timing: &Timing,
    reference: &str,
    instance: &api::PartitionInstance,
    now: Instant,
) -> Option<Work> {
    let started = instance.requested_state == api::RequestedState::Started;
    if started && !facts.installed.contains(&instance.software_release) {
        // Deployed once its software is there.
        return None;
    }
    let done = memory.partitions.get(reference);
    let process = match done {
        None => true,
        Some(done) if !done.is_for(instance) => true,
        Some(done) => match (done.retry, done.periodicity) {
            (Some(retry), _) => retry.at <= now,
            (None, Some(periodicity)) => done.at + periodicity <= now,
            (None, None) => false,
        },
    };
    let reference = reference.to_owned();
    if process {
        return Some(match instance.requested_state {
            api::RequestedState::Started => Work::Deploy(reference, instance.clone()),
            api::RequestedState::Stopped => Work::Stop(reference, instance.clone()),
            api::RequestedState::Destroyed => Work::Destroy(reference, instance.clone()),
        });
    }
    let healthy = done.is_some_and(|d| d.retry.is_none());
    let checked = done.map_or(now, |d| d.checked);
    (started && healthy && checked + timing.promise_interval <= now)
        .then(|| Work::CheckPromises(reference, instance.clone()))
}

/// The actions of a deployed instance not run yet, and the outcomes to report again.
fn action_work(
    memory: &Memory,
    reference: &str,
    instance: &api::PartitionInstance,
    now: Instant,
) -> Vec<Work> {
    // Run once the partition was deployed for this very instance (its executables are
    // there), never in one being destroyed.
    let deployed = memory
        .partitions
        .get(reference)
        .is_some_and(|d| d.instance == instance.id);
    if !deployed || instance.requested_state == api::RequestedState::Destroyed {
        return Vec::new();
    }
    instance
        .actions
        .iter()
        .filter_map(|action| match memory.actions.get(&action.id) {
            None => Some(Work::RunAction(reference.to_owned(), action.clone())),
            Some(ActionMemory {
                unreported: Some((outcome, retry)),
            }) if retry.at <= now => Some(Work::ReportAction(action.id, outcome.clone())),
            Some(_) => None,
        })
        .collect()
}

/// When something becomes due without any event: the earliest retry, periodic run or
/// promise check.
pub(crate) fn next_wake(memory: &Memory, timing: &Timing) -> Option<Instant> {
    let partitions = memory.partitions.values().map(|d| {
        let rerun = d
            .retry
            .map(|r| r.at)
            .or_else(|| d.periodicity.map(|p| d.at + p));
        let check = (d.retry.is_none() && d.state == api::RequestedState::Started)
            .then_some(d.checked + timing.promise_interval);
        [rerun, check].into_iter().flatten().min()
    });
    let software = memory.software.values().map(|s| s.retry.map(|r| r.at));
    let actions = memory
        .actions
        .values()
        .map(|a| a.unreported.as_ref().map(|(_, r)| r.at));
    partitions.chain(software).chain(actions).flatten().min()
}

impl Memory {
    /// Takes in a newer desired state: what was reported of software since the last one
    /// no longer stands. Returns whether it was newer.
    pub(crate) fn take_desired(&mut self, desired: api::DesiredState) -> bool {
        let newer = self
            .desired
            .as_ref()
            .is_none_or(|d| d.revision != desired.revision);
        if newer {
            for software in self.software.values_mut() {
                software.reported = None;
            }
        }
        // An action the master no longer lists as pending ended there: forgotten here.
        let pending: std::collections::HashSet<i64> = desired
            .partitions
            .iter()
            .filter_map(|p| p.instance.as_ref())
            .flat_map(|i| i.actions.iter().map(|a| a.id))
            .collect();
        self.actions.retain(|id, _| pending.contains(id));
        self.desired = Some(desired);
        newer
    }

    /// Records how a piece of work ended.
    pub(crate) fn settle(&mut self, outcome: Outcome, timing: &Timing, now: Instant) {
        match outcome {
            Outcome::Software {
                url,
                built,
                reported,
                report_failed,
            } => {
                let memory = self.software.entry(url).or_default();
                if reported.is_some() {
                    memory.reported = reported;
                }
                memory.retry = match (built, report_failed) {
                    (Some(false), _) => Some(Retry::after(
                        memory.retry,
                        now,
                        timing.build_first_retry,
                        timing.build_max_retry,
                    )),
                    // Not again at once: the master may be away.
                    (_, true) => Some(Retry::after(
                        memory.retry,
                        now,
                        timing.first_retry,
                        timing.max_retry,
                    )),
                    _ => None,
                };
            }
            Outcome::Partition {
                reference,
                instance,
                ok,
                periodicity,
            } => {
                let previous = self
                    .partitions
                    .get(&reference)
                    .filter(|d| d.instance == instance.id)
                    .and_then(|d| d.retry);
                let retry = (!ok)
                    .then(|| Retry::after(previous, now, timing.first_retry, timing.max_retry));
                self.partitions.insert(
                    reference,
                    Done {
                        instance: instance.id,
                        timestamp: instance.timestamp,
                        state: instance.requested_state,
                        at: now,
                        periodicity,
                        retry,
                        checked: now,
                    },
                );
            }
            Outcome::Freed(reference) => {
                self.partitions.remove(&reference);
            }
            Outcome::Action { id, unreported } => {
                let previous = self
                    .actions
                    .get(&id)
                    .and_then(|a| a.unreported.as_ref().map(|(_, r)| *r));
                let unreported = unreported.map(|outcome| {
                    let retry = Retry::after(previous, now, timing.first_retry, timing.max_retry);
                    (outcome, retry)
                });
                self.actions.insert(id, ActionMemory { unreported });
            }
            Outcome::Promises {
                reference,
                instance,
                ok,
            } => {
                let Some(done) = self.partitions.get_mut(&reference) else {
                    return;
                };
                if !done.is_for(&instance) {
                    return;
                }
                done.checked = now;
                if !ok {
                    // Deployed again soon: a service restarted, a profile run again.
                    done.retry = Some(Retry::after(
                        None,
                        now,
                        timing.first_retry,
                        timing.max_retry,
                    ));
                }
            }
        }
    }

    /// What failed at the last attempt: partitions and software releases.
    pub(crate) fn failures(&self) -> Vec<String> {
        let mut failed: Vec<String> = self
            .partitions
            .iter()
            .filter(|(_, d)| d.retry.is_some())
            .map(|(p, _)| p.clone())
            .chain(
                self.software
                    .iter()
                    .filter(|(_, s)| s.retry.is_some())
                    .map(|(u, _)| u.clone()),
            )
            .collect();
        failed.sort();
        failed
    }
}

#[cfg(test)]
mod tests;
