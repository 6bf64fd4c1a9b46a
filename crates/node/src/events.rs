//! The agent's event loop: it owns the memory, and nothing else writes it. Events are the
//! answers of the long poll (a newer desired state, or an unreachable master), pieces of
//! work ending, and timers. After each, it asks the planner what is due, starts a task for
//! each piece of work, and sleeps until the next event or the next timer.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use grove_api as api;
use tokio::sync::mpsc;

use crate::plan::{self, Facts, Key, Memory, Outcome, ServiceName, Timing, Work};
use crate::state::Deployed;
use crate::work::Job;
use crate::{Agent, ClientError, FIRST_RETRY, MAX_RETRY, NodeError, software, stale};

/// The longest pause between two attempts to reach a master that does not answer.
const OFFLINE_RETRY: Duration = Duration::from_secs(2);

/// What wakes the loop besides the long poll and the timers.
#[derive(Debug)]
enum Event {
    /// A piece of work ended.
    Done(Key, Outcome),
}

type Poll = tokio::task::JoinHandle<Result<api::DesiredState, ClientError>>;

pub(crate) struct Looper {
    agent: Agent,
    memory: Memory,
    /// What was deployed successfully, per partition (kept on disk too).
    deployed: HashMap<String, Deployed>,
    /// Partitions with services the previous agent left running (adopted at the start):
    /// ended if the master freed them meanwhile.
    inherited: HashSet<String>,
    timing: Timing,
    events: mpsc::UnboundedSender<Event>,
    inbox: mpsc::UnboundedReceiver<Event>,
}

impl Looper {
    pub(crate) fn new(agent: Agent) -> Looper {
        let (events, inbox) = mpsc::unbounded_channel();
        let config = agent.config();
        let timing = Timing {
            first_retry: FIRST_RETRY,
            max_retry: MAX_RETRY,
            build_first_retry: Duration::from_secs(10),
            build_max_retry: Duration::from_secs(600),
            promise_interval: config.promise_interval(),
        };
        Looper {
            agent,
            memory: Memory::default(),
            deployed: HashMap::new(),
            inherited: HashSet::new(),
            timing,
            events,
            inbox,
        }
    }

    /// Takes up what the previous agent kept: the desired state, what it deployed, and
    /// the services still running, which are supervised again at once (each partition's
    /// next deployment keeps those whose spec is unchanged and stops the others).
    pub(crate) async fn recall(&mut self) {
        let state = &self.agent.shared.state;
        let records = state.records();
        let mut adopted = 0;
        let mut supervisor = self.agent.shared.supervisor.lock().await;
        for record in records.all() {
            match supervisor.adopt(&record) {
                Ok(()) => {
                    adopted += 1;
                    if let Some(name) = ServiceName::parse(&record.spec.name) {
                        self.inherited.insert(name.partition);
                    }
                }
                Err(e) => {
                    tracing::info!(error = %e, "not adopted");
                    let _ = records.remove(&record.spec.name);
                }
            }
        }
        drop(supervisor);
        if let Some(desired) = state.desired() {
            self.memory.take_desired(desired);
        }
        self.deployed = state.deployed();
        tracing::info!(
            services = adopted,
            "services left running by the previous agent, adopted"
        );
    }

    /// Stops what the previous agent left running but did not record (an agent older than
    /// the records, or one killed between a start and its record): it would hold its
    /// ports against the services started now.
    pub(crate) async fn stop_leftovers(&self) {
        let partitions: Vec<PathBuf> = self.agent.slots().iter().map(|s| s.path.clone()).collect();
        let recorded: Vec<u32> = self
            .agent
            .service_status()
            .await
            .iter()
            .filter_map(|s| s.pid)
            .collect();
        let leftovers: Vec<(u32, PathBuf)> = stale::leftovers(&partitions)
            .into_iter()
            .filter(|(pid, _)| !recorded.contains(pid))
            .collect();
        if !leftovers.is_empty() {
            let grace = self.agent.shared.options.policy.stop_timeout;
            let _ = tokio::task::spawn_blocking(move || stale::stop(&leftovers, grace)).await;
        }
    }

    /// One long poll of the change stream, on a blocking thread.
    fn poll(&self, wait: Duration) -> Poll {
        let after = self.memory.desired.as_ref().map(|d| d.revision);
        let agent = self.agent.clone();
        tokio::task::spawn_blocking(move || {
            let shared = &agent.shared;
            shared.client.desired(&shared.config.computer, after, wait)
        })
    }

    /// Takes in what a poll answered. An unreachable master is not an error: the last
    /// known state stays.
    fn accept(&mut self, answer: Result<api::DesiredState, ClientError>) -> Result<(), NodeError> {
        match answer {
            Ok(desired) => {
                self.memory.reached = true;
                if self.memory.offline {
                    tracing::info!("the master answers again");
                    self.memory.offline = false;
                }
                let kept = desired.clone();
                if self.memory.take_desired(desired) {
                    self.agent.shared.state.keep_desired(&kept);
                }
                Ok(())
            }
            Err(ClientError::Unreachable { url, message }) => {
                if !self.memory.offline {
                    tracing::warn!(%url, %message, "the master is unreachable; services keep running");
                    self.memory.offline = true;
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Asks once, without waiting; an error when the master cannot be reached.
    pub(crate) async fn refresh(&mut self) -> Result<(), NodeError> {
        let answer = self
            .poll(Duration::ZERO)
            .await
            .map_err(|e| NodeError::Failed(e.to_string()))?;
        self.accept(answer)?;
        if self.memory.offline {
            return Err(NodeError::Failed(format!(
                "cannot reach the master at {}",
                self.agent.config().master_url
            )));
        }
        Ok(())
    }

    /// What the disk says about the releases and partitions the desired state names, and
    /// which partitions the previous agent left services in.
    fn facts(&self) -> Facts {
        let mut facts = Facts::default();
        let root = &self.agent.config().software_root;
        if let Some(desired) = &self.memory.desired {
            // Each release once, however many partitions run it.
            let urls: HashSet<&String> = desired
                .software
                .iter()
                .map(|s| &s.software_release)
                .chain(
                    desired
                        .partitions
                        .iter()
                        .filter_map(|p| p.instance.as_ref())
                        .map(|i| &i.software_release),
                )
                .collect();
            for url in urls {
                if software::is_installed(root, url) {
                    facts.installed.insert(url.clone());
                }
                if software::software_path(root, url).exists() {
                    facts.present.insert(url.clone());
                }
            }
        }
        facts.occupied = self.inherited.clone();
        facts.slots = self
            .agent
            .slots()
            .into_iter()
            .map(|s| s.reference)
            .collect();
        facts
    }

    /// Starts a task for each piece of work that is due (of the kinds `only` lets
    /// through); returns how many.
    fn start_due(&mut self, only: impl Fn(&Work) -> bool) -> usize {
        // Not the supervisor's lock: a deployment may hold it while services stop.
        let work = plan::due(&self.memory, &self.facts(), &self.timing, Instant::now());
        let mut started = 0;
        for work in work.into_iter().filter(|w| only(w)) {
            let key = work.key();
            let job = self.job(work);
            self.memory.busy.insert(key.clone());
            let agent = self.agent.clone();
            let events = self.events.clone();
            tokio::spawn(async move {
                let outcome = agent.perform(job).await;
                let _ = events.send(Event::Done(key, outcome));
            });
            started += 1;
        }
        started
    }

    /// The work with what goes along: whether the master is away while this very
    /// instance was deployed before.
    fn job(&self, work: Work) -> Job {
        let restore_only = match &work {
            Work::Deploy(reference, instance) => {
                let away = self.memory.offline || !self.memory.reached;
                let same = Deployed {
                    instance: instance.id,
                    timestamp: instance.timestamp,
                };
                away && self.deployed.get(reference) == Some(&same)
            }
            _ => false,
        };
        Job { work, restore_only }
    }

    fn on_event(&mut self, event: Event) {
        let Event::Done(key, outcome) = event;
        self.memory.busy.remove(&key);
        if let Key::Partition(reference) = &key {
            // Processed once: what it runs is this agent's business now.
            self.inherited.remove(reference);
        }
        self.remember_deployed(&outcome);
        self.memory.settle(outcome, &self.timing, Instant::now());
    }

    /// Keeps on disk which instance each partition last deployed successfully.
    fn remember_deployed(&mut self, outcome: &Outcome) {
        let changed = match outcome {
            Outcome::Partition {
                reference,
                instance,
                ok: true,
                ..
            } => match instance.requested_state {
                api::RequestedState::Started => {
                    let deployed = Deployed {
                        instance: instance.id,
                        timestamp: instance.timestamp,
                    };
                    self.deployed.insert(reference.clone(), deployed) != Some(deployed)
                }
                api::RequestedState::Destroyed => self.deployed.remove(reference).is_some(),
                api::RequestedState::Stopped => false,
            },
            Outcome::Freed(reference) => self.deployed.remove(reference).is_some(),
            _ => false,
        };
        if changed {
            self.agent.shared.state.keep_deployed(&self.deployed);
        }
    }

    /// Follows the change stream and carries out what is due until `shutdown`.
    pub(crate) async fn follow(
        &mut self,
        shutdown: &mut std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
    ) -> Result<(), NodeError> {
        let wait = Duration::from_secs(self.agent.config().poll_wait_seconds.max(1));
        let mut delay = FIRST_RETRY;
        let mut pending: Option<Poll> = None;
        loop {
            // Work runs in its own tasks: a slow build or profile never holds up the
            // change stream or the other partitions.
            self.start_due(|_| true);
            if pending.is_none() {
                pending = Some(self.poll(wait));
            }
            let Some(poll) = pending.as_mut() else {
                continue;
            };
            let wake = plan::next_wake(&self.memory, &self.timing).map_or_else(
                || tokio::time::Instant::now() + wait,
                tokio::time::Instant::from_std,
            );
            tokio::select! {
                () = shutdown.as_mut() => return Ok(()),
                answer = poll => {
                    pending = None;
                    let answer = answer.map_err(|e| NodeError::Failed(e.to_string()))?;
                    if let Err(e) = self.accept(answer) {
                        tracing::warn!(error = %e, "cannot read the desired state");
                    }
                    if self.memory.offline {
                        // An unreachable master answers at once: pause before asking again.
                        tokio::select! {
                            () = shutdown.as_mut() => return Ok(()),
                            () = tokio::time::sleep(delay) => {}
                        }
                        // At most a few seconds: a master back (or a link restored)
                        // is noticed soon, for the price of one connection attempt.
                        delay = (delay * 2).min(OFFLINE_RETRY);
                    } else {
                        delay = FIRST_RETRY;
                    }
                }
                Some(event) = self.inbox.recv() => self.on_event(event),
                () = tokio::time::sleep_until(wake) => {}
            }
        }
    }

    /// One pass for scripts: the work of one kind that is due now, to its end. Returns
    /// what failed.
    pub(crate) async fn pass(&mut self, software: bool) -> Vec<String> {
        let mut running = self.start_due(|w| w.is_software() == software);
        while running > 0 {
            match self.inbox.recv().await {
                Some(event) => self.on_event(event),
                None => break,
            }
            running -= 1;
        }
        self.memory.failures()
    }
}
