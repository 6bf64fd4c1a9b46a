//! Carrying out one piece of [`Work`]: builds, reports, deployments, stops, destructions,
//! promise checks. Each runs in a task of its own and answers an [`Outcome`], which the
//! event loop settles into its memory; nothing here touches that memory.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::{Duration, Instant};

use grove_api as api;
use grove_supervisor::ServiceSpec;

use crate::plan::{Outcome, ServiceName, Work};
use crate::{Agent, Client, ClientError, Slot, instance, software, stale};

/// How long promises may fail after their services were started, before it counts.
const PROMISE_GRACE: Duration = Duration::from_secs(3);
/// How long an instance's action may run.
const ACTION_TIMEOUT: Duration = Duration::from_secs(300);
/// How much of a failing build's or profile's message goes to the master.
const ERROR_TAIL: usize = 4000;

pub(crate) fn tail(text: &str) -> String {
    if text.len() <= ERROR_TAIL {
        return text.to_owned();
    }
    let mut start = text.len() - ERROR_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

/// Runs a blocking closure on the blocking pool; a panic there becomes an error.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("internal error: {e}")))
}

/// The promises could not be run at all: that is a failure too, never a pass.
fn checker_failed(message: String) -> Vec<instance::PromiseFailure> {
    vec![instance::PromiseFailure {
        name: "checker".to_owned(),
        message,
    }]
}

/// A piece of work with what the event loop hands along: whether a deployment may only
/// bring the services back (the master is away and this very instance was deployed).
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) work: Work,
    pub(crate) restore_only: bool,
}

impl Agent {
    pub(crate) async fn perform(&self, job: Job) -> Outcome {
        let Job { work, restore_only } = job;
        match work {
            Work::Build(url) => self.build(url).await,
            Work::ReportAvailable(url) => {
                let reported = self
                    .report_software(&url, api::SoftwareState::Available, None)
                    .await;
                software_outcome(url, None, Some(api::SoftwareState::Available), reported)
            }
            Work::Remove(url) => self.remove(url).await,
            Work::Deploy(reference, instance) => {
                let start = Instant::now();
                let ok = match self.slot(&reference) {
                    Some(slot) => self.deploy(&slot, &instance, restore_only).await,
                    None => false,
                };
                self.shared
                    .metrics
                    .deployed(ok, start.elapsed().as_secs_f64());
                self.partition_outcome(reference, instance, ok)
            }
            Work::Stop(reference, instance) => {
                self.stop_partition(&reference).await;
                let ok = self
                    .report_state(&instance, api::ReportedState::Stopped, None)
                    .await;
                self.partition_outcome(reference, instance, ok)
            }
            Work::Destroy(reference, instance) => {
                let ok = match self.slot(&reference) {
                    Some(slot) => self.destroy(&slot, &instance).await,
                    None => false,
                };
                self.partition_outcome(reference, instance, ok)
            }
            Work::Free(reference) => {
                if let Some(slot) = self.slot(&reference) {
                    self.end_tenant(&slot).await;
                    self.remove_limits(&slot.reference);
                }
                self.forget_certificate(&reference);
                Outcome::Freed(reference)
            }
            Work::RunAction(reference, action) => self.run_action(&reference, action).await,
            Work::ReportAction(id, outcome) => {
                let unreported = (!self.report_action(id, &outcome).await).then_some(outcome);
                Outcome::Action { id, unreported }
            }
            Work::CheckPromises(reference, instance) => {
                let ok = match self.slot(&reference) {
                    Some(slot) => self.check_promises(&slot, &instance).await,
                    None => true,
                };
                Outcome::Promises {
                    reference,
                    instance,
                    ok,
                }
            }
        }
    }

    fn partition_outcome(
        &self,
        reference: String,
        instance: api::PartitionInstance,
        ok: bool,
    ) -> Outcome {
        let periodicity = self.periodicity(&instance);
        Outcome::Partition {
            reference,
            instance,
            ok,
            periodicity,
        }
    }

    /// The configured periodicity, unless the software release ships a `periodicity` file
    /// (seconds; negative: only when something changed).
    fn periodicity(&self, instance: &api::PartitionInstance) -> Option<Duration> {
        let config = &self.shared.config;
        // The release's build user wrote it: read without following anything.
        let dir = software::software_path(&config.software_root, &instance.software_release);
        let text = grove_confine::Tree::open(&dir, None)
            .and_then(|tree| tree.read(std::path::Path::new("periodicity"), 64))
            .ok()
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned());
        match text.map(|t| t.trim().parse::<i64>()) {
            Some(Ok(seconds)) => u64::try_from(seconds).ok().map(Duration::from_secs),
            _ => Some(config.periodicity()),
        }
    }

    /// Reports to the master; an unreachable master is logged, not fatal.
    pub(crate) async fn report(
        &self,
        what: &'static str,
        call: impl FnOnce(&Client) -> Result<(), ClientError> + Send + 'static,
    ) -> bool {
        let shared = Arc::clone(&self.shared);
        let result = tokio::task::spawn_blocking(move || call(&shared.client)).await;
        match result {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot report {what}");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot report {what}");
                false
            }
        }
    }

    /// Runs an action in its partition as the partition's user, then reports it.
    async fn run_action(&self, reference: &str, action: api::actions::PendingAction) -> Outcome {
        let id = action.id;
        let outcome = match self.slot(reference) {
            Some(slot) => {
                let path = slot.path.clone();
                let user = slot.ids();
                let timeout = ACTION_TIMEOUT;
                tracing::info!(partition = %reference, action = id, name = %action.name, "running an action");
                blocking(move || Ok(crate::actions::run(&path, user, &action, timeout)))
                    .await
                    .unwrap_or_else(|error| api::actions::ActionOutcome {
                        result: None,
                        error: Some(error),
                    })
            }
            None => api::actions::ActionOutcome {
                result: None,
                error: Some(format!(
                    "partition {reference} is not formatted on this node"
                )),
            },
        };
        if let Some(error) = &outcome.error {
            tracing::warn!(partition = %reference, action = id, error = %error, "an action failed");
        }
        let unreported = (!self.report_action(id, &outcome).await).then_some(outcome);
        Outcome::Action { id, unreported }
    }

    async fn report_action(&self, id: i64, outcome: &api::actions::ActionOutcome) -> bool {
        let outcome = outcome.clone();
        self.report("an action's end", move |c| c.finish_action(id, &outcome))
            .await
    }

    async fn report_software(
        &self,
        url: &str,
        state: api::SoftwareState,
        error: Option<String>,
    ) -> bool {
        let computer = self.shared.config.computer.clone();
        let report = api::SoftwareReport {
            software_release: url.to_owned(),
            state,
            error,
        };
        self.report("software state", move |c| {
            c.report_software(&computer, &report)
        })
        .await
    }

    /// Builds a release: as the build user through `grove node build-software` when
    /// there is one, in this process otherwise.
    async fn build(&self, url: String) -> Outcome {
        tracing::info!(software = %url, "building");
        let mut last = None;
        let mut report_failed = false;
        let mut reported = |ok: bool, state| {
            if ok {
                last = Some(state);
            } else {
                report_failed = true;
            }
        };
        let building = self
            .report_software(&url, api::SoftwareState::Building, None)
            .await;
        reported(building, api::SoftwareState::Building);
        let _permit = self.shared.builds.acquire().await;
        let shared = Arc::clone(&self.shared);
        let target = url.clone();
        let built = blocking(move || {
            let root = &shared.config.software_root;
            let user = *crate::lock(&shared.build_user);
            match (user, &shared.options.runner) {
                (Some(user), Some(runner)) => software::build_as(root, &target, runner, user),
                (Some(_), None) => Err("builds as the build user need the grove binary".to_owned()),
                (None, _) => {
                    software::install_software(root, &target, &shared.fetcher, &shared.registry)
                }
            }
        })
        .await;
        let ok = match built {
            Ok(_) => {
                let sent = self
                    .report_software(&url, api::SoftwareState::Available, None)
                    .await;
                reported(sent, api::SoftwareState::Available);
                true
            }
            Err(message) => {
                tracing::warn!(software = %url, error = %message, "build failed");
                let sent = self
                    .report_software(&url, api::SoftwareState::Error, Some(tail(&message)))
                    .await;
                reported(sent, api::SoftwareState::Error);
                false
            }
        };
        Outcome::Software {
            url,
            built: Some(ok),
            reported: last,
            report_failed,
        }
    }

    async fn remove(&self, url: String) -> Outcome {
        let root = self.shared.config.software_root.clone();
        let target = url.clone();
        match blocking(move || software::remove_software(&root, &target)).await {
            Ok(()) => {
                let sent = self
                    .report_software(&url, api::SoftwareState::Destroyed, None)
                    .await;
                software_outcome(url, None, Some(api::SoftwareState::Destroyed), sent)
            }
            Err(message) => {
                tracing::warn!(software = %url, error = %message, "cannot remove");
                software_outcome(url, None, None, false)
            }
        }
    }

    async fn report_state(
        &self,
        instance: &api::PartitionInstance,
        state: api::ReportedState,
        error: Option<String>,
    ) -> bool {
        let id = instance.id;
        let report = api::StateReport {
            state,
            error,
            timestamp: Some(instance.timestamp),
        };
        self.report("instance state", move |c| c.report_state(id, &report))
            .await
    }

    /// Runs the profile, starts the services, checks the promises, reports. With
    /// `restore_only` (the master is away and this very instance was deployed before),
    /// only brings the services back: a profile run would need the master.
    async fn deploy(
        &self,
        slot: &Slot,
        instance: &api::PartitionInstance,
        restore_only: bool,
    ) -> bool {
        let config = &self.shared.config;
        let software_dir =
            software::software_path(&config.software_root, &instance.software_release);
        if !software_dir.join(software::COMPLETED).is_file() {
            tracing::debug!(partition = %slot.reference, "its software release is not installed yet");
            // Counted as a failure, to be looked at again soon.
            return false;
        }
        if restore_only {
            if let Err(message) = self.sync_services(slot, instance.size.as_ref()).await {
                tracing::warn!(partition = %slot.reference, error = %message, "cannot start the services");
            }
            // Deployed again, fully, once the master answers.
            return false;
        }
        let certificate = match self
            .partition_certificate(&slot.reference, instance.id)
            .await
        {
            Ok(certificate) => certificate,
            Err(message) => {
                tracing::warn!(partition = %slot.reference, error = %message, "no certificate for the partition");
                self.report_state(instance, api::ReportedState::Error, Some(message))
                    .await;
                return false;
            }
        };
        let job = instance::Job {
            computer: config.computer.clone(),
            partition: slot.reference.clone(),
            path: slot.path.clone(),
            addresses: slot.addresses.clone(),
            software_dir,
            master_url: config.master_url.clone(),
            master_ca: self.shared.master_ca.clone(),
            instance: instance.clone(),
            certificate,
        };
        let shared = Arc::clone(&self.shared);
        let user = slot.ids();
        let outcome = blocking(move || match (user, &shared.options.runner) {
            (Some((uid, gid)), Some(runner)) => instance::run_as(&job, runner, uid, gid),
            (Some(_), None) => {
                Err("isolated partitions need the grove binary to run profiles".to_owned())
            }
            (None, _) => instance::run(&job, &shared.fetcher, &shared.registry),
        })
        .await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(message) => {
                tracing::warn!(partition = %slot.reference, error = %message, "instance profile failed");
                self.report_state(instance, api::ReportedState::Error, Some(tail(&message)))
                    .await;
                return false;
            }
        };
        let id = instance.id;
        let children = api::Children {
            titles: outcome.children,
        };
        if !self
            .report("children", move |c| c.set_children(id, &children))
            .await
        {
            return false;
        }
        let started = match self.sync_services(slot, instance.size.as_ref()).await {
            Ok(started) => started,
            Err(message) => {
                self.report_state(instance, api::ReportedState::Error, Some(message))
                    .await;
                return false;
            }
        };
        // Services started just now get a moment to come up before a failure counts.
        let grace = if started {
            PROMISE_GRACE
        } else {
            Duration::ZERO
        };
        let failures = self.promise_failures(slot, grace).await;
        if failures.is_empty() {
            self.report_state(instance, api::ReportedState::Started, None)
                .await
        } else {
            let message = instance::failures_text(&failures);
            self.shared
                .metrics
                .promise_failures
                .add(failures.len() as u64);
            tracing::warn!(partition = %slot.reference, error = %message, "promises failed");
            self.report_state(instance, api::ReportedState::Error, Some(tail(&message)))
                .await;
            false
        }
    }

    /// Runs the partition's promises until they pass or `grace` is over.
    async fn promise_failures(
        &self,
        slot: &Slot,
        grace: Duration,
    ) -> Vec<instance::PromiseFailure> {
        let path = slot.path.clone();
        let user = slot.ids();
        let timeout = self.shared.config.promise_timeout();
        blocking(move || {
            let deadline = Instant::now() + grace;
            loop {
                let failures = instance::check_promises(&path, user, timeout);
                if failures.is_empty() || Instant::now() >= deadline {
                    return Ok(failures);
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .await
        .unwrap_or_else(checker_failed)
    }

    /// A check between deployments: a failure is reported as the instance's error (the
    /// event loop then deploys the partition again).
    async fn check_promises(&self, slot: &Slot, instance: &api::PartitionInstance) -> bool {
        let failures = self.promise_failures(slot, Duration::ZERO).await;
        if failures.is_empty() {
            return true;
        }
        let message = instance::failures_text(&failures);
        self.shared
            .metrics
            .promise_failures
            .add(failures.len() as u64);
        tracing::warn!(partition = %slot.reference, error = %message, "a promise failed");
        self.report_state(instance, api::ReportedState::Error, Some(tail(&message)))
            .await;
        false
    }

    /// Starts what `etc/service` and `etc/run` hold, restarts what changed, stops the rest.
    /// A service the previous agent left running (adopted when this agent started) is kept
    /// while its spec is the same. Returns whether anything was started.
    async fn sync_services(&self, slot: &Slot, size: Option<&api::Size>) -> Result<bool, String> {
        let config = &self.shared.config;
        let tree = slot.tree().map_err(|e| e.to_string())?;
        let cgroups = match size {
            Some(size) => self
                .shared
                .limits
                .apply(&slot.reference, size)
                .map_err(|e| format!("cannot enforce size {}: {e}", size.name))?,
            None => Vec::new(),
        };
        let found = instance::services(&tree).map_err(|e| e.to_string())?;
        let mut wanted = BTreeMap::new();
        for launcher in found {
            let env: BTreeMap<OsString, OsString> = [
                ("PATH", instance::SERVICE_PATH.into()),
                ("HOME", slot.path.clone().into_os_string()),
                ("LANG", "C.UTF-8".into()),
            ]
            .into_iter()
            .map(|(k, v): (&str, OsString)| (OsString::from(k), v))
            .collect();
            let spec = ServiceSpec {
                name: ServiceName::new(&slot.reference, &launcher.name).to_string(),
                program: launcher.path,
                args: Vec::new(),
                cwd: slot.path.clone(),
                env,
                log: config.service_log(&slot.reference, &launcher.name),
                user: slot.ids(),
                revision: launcher.digest,
                cgroups: cgroups.clone(),
            };
            wanted.insert(spec.name.clone(), spec);
        }
        let mut supervisor = self.shared.supervisor.lock().await;
        for name in supervisor.names() {
            if !ServiceName::is_in(&name, &slot.reference) {
                continue;
            }
            if wanted.get(&name).is_some_and(|spec| supervisor.runs(spec)) {
                wanted.remove(&name);
            } else {
                tracing::info!(service = %name, "stopping");
                let _ = supervisor.stop(&name).await;
            }
        }
        let started = !wanted.is_empty();
        for (name, spec) in wanted {
            tracing::info!(service = %name, "starting");
            supervisor
                .start(spec)
                .map_err(|e| format!("cannot start {name}: {e}"))?;
        }
        Ok(started)
    }

    /// Stops the partition's services.
    async fn stop_partition(&self, reference: &str) {
        let mut supervisor = self.shared.supervisor.lock().await;
        for name in supervisor.names() {
            if ServiceName::is_in(&name, reference) {
                let _ = supervisor.stop(&name).await;
            }
        }
    }

    /// Ends every process of the partition's tenant, supervised or not.
    async fn end_tenant(&self, slot: &Slot) {
        self.stop_partition(&slot.reference).await;
        let tenant = match slot.ids() {
            Some((uid, _)) => stale::Tenant::User(uid),
            None => stale::Tenant::Directory(slot.path.clone()),
        };
        let grace = self.shared.options.policy.stop_timeout;
        let _ = tokio::task::spawn_blocking(move || stale::end_tenant(&tenant, grace)).await;
    }

    /// Removes the partition's control groups (its processes have ended).
    fn remove_limits(&self, reference: &str) {
        if let Err(e) = self.shared.limits.remove(reference) {
            tracing::warn!(partition = %reference, error = %e, "cannot remove the partition's control groups");
        }
    }

    async fn destroy(&self, slot: &Slot, instance: &api::PartitionInstance) -> bool {
        // Nothing of this tenant may meet the next one.
        self.end_tenant(slot).await;
        self.remove_limits(&slot.reference);
        self.forget_certificate(&slot.reference);
        let path = slot.path.clone();
        let user = slot.ids();
        let timeout = self.shared.config.promise_timeout();
        if let Err(message) = blocking(move || instance::wipe(&path, user, timeout)).await {
            tracing::warn!(partition = %slot.reference, error = %message, "cannot wipe");
            return false;
        }
        self.report_state(instance, api::ReportedState::Destroyed, None)
            .await
    }
}

fn software_outcome(
    url: String,
    built: Option<bool>,
    reported: Option<api::SoftwareState>,
    sent: bool,
) -> Outcome {
    Outcome::Software {
        url,
        built,
        reported: reported.filter(|_| sent),
        report_failed: !sent,
    }
}
