//! The runtime in one partition: the subtree of a root instance, as the master wants it,
//! brought about step by step. [`reconcile`] runs [`lifecycle::plan`] over the instances
//! until nothing is left to do, runs each step's script through a [`Runner`], and runs
//! `update` for every import that appeared, changed or went away since the last time.
//! What it leaves ([`Observed`]) is kept by the caller for the next call.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::instances::Instance;
use crate::lifecycle::{self, Facts, Import, Imports, State, Step, Wanted};
use crate::script::{self, Action, Change};

/// One instance of the subtree as the master wants it, everything resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Desired {
    pub path: String,
    pub name: String,
    pub component: String,
    /// `target` for the root (the partition itself), `script`, `logger`.
    pub installer: String,
    pub wanted: Wanted,
    pub exports: BTreeMap<String, String>,
    pub imports: Imports,
}

impl Desired {
    fn parent(&self) -> Option<&str> {
        crate::instances::parent_path(&self.path)
    }

    fn is_root(&self) -> bool {
        self.parent().is_none()
    }
}

/// What the partition holds of an instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observed {
    pub state: Option<State>,
    /// The imports its scripts last saw.
    pub imports: BTreeMap<String, Vec<Import>>,
    /// The last step's failure, if it failed.
    pub error: Option<String>,
}

impl Observed {
    pub fn state(&self) -> State {
        self.state.unwrap_or(State::NotDeployed)
    }
}

/// Runs an instance's script for an action. `Ok` when the script succeeded or there is
/// none; `Err` with what it said otherwise.
pub trait Runner {
    fn run(
        &mut self,
        instance: &Desired,
        action: Action,
        env: BTreeMap<String, String>,
    ) -> Result<(), String>;

    /// The instance's files folder, for `ROBOCONF_FILES_DIR`.
    fn files_dir(&self, instance: &Desired) -> String;

    /// `instance`'s `action` is about to run: `observed` shows it in the transient state
    /// (deploying, starting, stopping, undeploying), for the runner to tell.
    fn transient(
        &mut self,
        instance: &Desired,
        action: Action,
        observed: &BTreeMap<String, Observed>,
    ) {
        let _ = (instance, action, observed);
    }
}

/// What a reconciliation did, in order, for the logs and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    pub path: String,
    pub action: Action,
    pub ok: bool,
}

/// Brings the instances towards what is wanted, as far as they can go now. `observed`
/// is updated in place (instances no longer wanted at all are undeployed and dropped).
pub fn reconcile(
    desired: &[Desired],
    observed: &mut BTreeMap<String, Observed>,
    runner: &mut dyn Runner,
) -> Vec<Done> {
    let mut done = Vec::new();
    let by_path: BTreeMap<&str, &Desired> = desired.iter().map(|d| (d.path.as_str(), d)).collect();
    // The root is the partition: there as soon as this runs.
    for d in desired.iter().filter(|d| d.is_root()) {
        observed.entry(d.path.clone()).or_default().state = Some(State::DeployedStarted);
    }
    // The master keeps an instance in the subtree until it is not deployed: one that
    // left it is forgotten.
    observed.retain(|path, _| by_path.contains_key(path.as_str()));
    // Each instance fails at most once a call: the next call tries again.
    let mut failed: std::collections::BTreeSet<String> = Default::default();
    // Enough passes for the deepest chain of steps; each pass takes at least one step.
    for _ in 0..(desired.len() * 4 + 4) {
        let mut stepped = false;
        // Stops and undeploys deepest first, the rest parents first.
        let mut order: Vec<&Desired> = desired.iter().collect();
        order.sort_by_key(|d| d.path.matches('/').count());
        let steps: Vec<(&Desired, Step)> = order
            .iter()
            .filter(|d| !d.is_root() && !failed.contains(&d.path))
            .filter_map(|d| {
                let parent = d.parent().map(|p| {
                    observed
                        .get(p)
                        .map(Observed::state)
                        .unwrap_or(State::NotDeployed)
                });
                let facts = Facts {
                    state: observed
                        .get(&d.path)
                        .map(Observed::state)
                        .unwrap_or(State::NotDeployed),
                    wanted: d.wanted,
                    parent,
                    resolved: d.imports.resolved,
                };
                lifecycle::plan(facts).map(|s| (*d, s))
            })
            .collect();
        let depth = |d: &Desired| d.path.matches('/').count();
        let state_of = |p: &str| {
            observed
                .get(p)
                .map(Observed::state)
                .unwrap_or(State::NotDeployed)
        };
        let downward = steps
            .iter()
            .filter(|(_, s)| matches!(s, Step::Stop(_) | Step::Undeploy))
            .max_by_key(|(d, _)| depth(d))
            .copied();
        let next = match downward {
            // Going down, descendants go first, the deepest first: started ones stop
            // (waiting for their ancestor), and before an undeploy, deployed ones go.
            Some((d, step)) => {
                let below = format!("{}/", d.path);
                let first = order
                    .iter()
                    .filter(|c| c.path.starts_with(&below) && !failed.contains(&c.path))
                    .filter_map(|c| match state_of(&c.path) {
                        State::DeployedStarted => Some((*c, Step::Stop(State::WaitingForAncestor))),
                        s if step == Step::Undeploy && s.is_deployed() => {
                            Some((*c, Step::Undeploy))
                        }
                        _ => None,
                    })
                    .max_by_key(|(c, _)| depth(c));
                Some(first.unwrap_or((d, step)))
            }
            None => steps.first().copied(),
        };
        if let Some((d, step)) = next {
            stepped = true;
            if !take(d, step, &by_path, observed, runner, &mut done) {
                failed.insert(d.path.clone());
            }
        }
        if !stepped {
            break;
        }
    }
    // Imports that changed under started instances: `update`, once per change.
    for d in desired.iter().filter(|d| !d.is_root()) {
        let entry = observed.entry(d.path.clone()).or_default();
        if entry.state() != State::DeployedStarted {
            continue;
        }
        let before = std::mem::take(&mut entry.imports);
        let changes = changes(&before, &d.imports.by_prefix);
        entry.imports = d.imports.by_prefix.clone();
        for change in changes {
            let env = environment(d, &by_path, runner, Some(&change));
            let ok = run(runner, d, Action::Update, env, observed);
            done.push(Done {
                path: d.path.clone(),
                action: Action::Update,
                ok,
            });
        }
    }
    done
}

/// The imports that appeared, changed (as appeared) or went away between two sets.
fn changes(
    before: &BTreeMap<String, Vec<Import>>,
    now: &BTreeMap<String, Vec<Import>>,
) -> Vec<Change> {
    let mut out = Vec::new();
    let index = |m: &BTreeMap<String, Vec<Import>>| -> BTreeMap<(String, String), BTreeMap<String, String>> {
        m.iter()
            .flat_map(|(prefix, list)| list.iter().map(move |i| ((prefix.clone(), i.path.clone()), i.values.clone())))
            .collect()
    };
    let (old, new) = (index(before), index(now));
    for ((prefix, path), values) in &new {
        if old.get(&(prefix.clone(), path.clone())) != Some(values) {
            out.push(Change {
                path: path.clone(),
                component: prefix.clone(),
                appeared: true,
                values: values.clone(),
            });
        }
    }
    for ((prefix, path), values) in &old {
        if !new.contains_key(&(prefix.clone(), path.clone())) {
            out.push(Change {
                path: path.clone(),
                component: prefix.clone(),
                appeared: false,
                values: values.clone(),
            });
        }
    }
    out
}

fn environment(
    d: &Desired,
    by_path: &BTreeMap<&str, &Desired>,
    runner: &dyn Runner,
    change: Option<&Change>,
) -> BTreeMap<String, String> {
    let mut ancestors = Vec::new();
    let mut at = d.parent();
    while let Some(p) = at {
        if let Some(a) = by_path.get(p) {
            ancestors.push((a.component.clone(), a.exports.clone()));
            at = a.parent();
        } else {
            break;
        }
    }
    let instance = Instance {
        path: d.path.clone(),
        name: d.name.clone(),
        component: d.component.clone(),
        ..Instance::default()
    };
    script::environment(
        &instance,
        &d.exports,
        &ancestors,
        &d.imports,
        &runner.files_dir(d),
        change,
    )
}

fn run(
    runner: &mut dyn Runner,
    d: &Desired,
    action: Action,
    env: BTreeMap<String, String>,
    observed: &mut BTreeMap<String, Observed>,
) -> bool {
    let outcome = if d.installer.eq_ignore_ascii_case("script") {
        runner.run(d, action, env)
    } else {
        // `logger` and the others the master let through: nothing to run.
        Ok(())
    };
    let entry = observed.entry(d.path.clone()).or_default();
    match outcome {
        Ok(()) => {
            entry.error = None;
            true
        }
        Err(message) => {
            entry.error = Some(format!("{}: {message}", action.as_str()));
            false
        }
    }
}

/// Takes one step; whether it succeeded.
fn take(
    d: &Desired,
    step: Step,
    by_path: &BTreeMap<&str, &Desired>,
    observed: &mut BTreeMap<String, Observed>,
    runner: &mut dyn Runner,
    done: &mut Vec<Done>,
) -> bool {
    let before = observed
        .get(&d.path)
        .map(Observed::state)
        .unwrap_or(State::NotDeployed);
    let (action, success, failure) = match step {
        Step::Become(state) => {
            observed.entry(d.path.clone()).or_default().state = Some(state);
            return true;
        }
        Step::Deploy => (Action::Deploy, State::DeployedStopped, State::NotDeployed),
        Step::Start => (Action::Start, State::DeployedStarted, before),
        // A failed stop is logged; the instance is stopped all the same.
        Step::Stop(to) => (Action::Stop, to, to),
        Step::Undeploy => (Action::Undeploy, State::NotDeployed, State::DeployedStopped),
    };
    let env = environment(d, by_path, runner, None);
    let transient = match action {
        Action::Deploy => State::Deploying,
        Action::Start => State::Starting,
        Action::Stop => State::Stopping,
        _ => State::Undeploying,
    };
    observed.entry(d.path.clone()).or_default().state = Some(transient);
    runner.transient(d, action, observed);
    let ok = run(runner, d, action, env, observed);
    let entry = observed.entry(d.path.clone()).or_default();
    entry.state = Some(if ok { success } else { failure });
    if ok && action == Action::Start {
        // What the start script saw: no update for it.
        entry.imports = d.imports.by_prefix.clone();
    }
    if action == Action::Undeploy && ok {
        entry.imports.clear();
    }
    done.push(Done {
        path: d.path.clone(),
        action,
        ok,
    });
    ok || matches!(step, Step::Stop(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what it is asked to run; fails the actions listed.
    #[derive(Default)]
    struct Recorder {
        ran: Vec<(String, Action, BTreeMap<String, String>)>,
        fail: Vec<(String, Action)>,
        /// The transient states told, by path, in order.
        told: Vec<(String, State)>,
    }

    impl Runner for Recorder {
        fn run(
            &mut self,
            instance: &Desired,
            action: Action,
            env: BTreeMap<String, String>,
        ) -> Result<(), String> {
            self.ran.push((instance.path.clone(), action, env));
            if self.fail.contains(&(instance.path.clone(), action)) {
                Err("exit status 1".to_owned())
            } else {
                Ok(())
            }
        }

        fn files_dir(&self, instance: &Desired) -> String {
            format!("/srv{}/files", instance.path)
        }

        fn transient(&mut self, _: &Desired, _: Action, observed: &BTreeMap<String, Observed>) {
            self.told.extend(
                observed
                    .iter()
                    .filter(|(_, o)| o.state().is_transient())
                    .map(|(p, o)| (p.clone(), o.state())),
            );
        }
    }

    fn desired(path: &str, component: &str, installer: &str, wanted: Wanted) -> Desired {
        Desired {
            path: path.to_owned(),
            name: path.rsplit('/').next().unwrap_or_default().to_owned(),
            component: component.to_owned(),
            installer: installer.to_owned(),
            wanted,
            exports: BTreeMap::new(),
            imports: Imports {
                resolved: true,
                ..Imports::default()
            },
        }
    }

    fn ran(r: &Recorder) -> Vec<(String, &'static str)> {
        r.ran
            .iter()
            .map(|(p, a, _)| (p.clone(), a.as_str()))
            .collect()
    }

    fn pairs(list: &[(&str, &'static str)]) -> Vec<(String, &'static str)> {
        list.iter().map(|(p, a)| ((*p).to_owned(), *a)).collect()
    }

    #[test]
    fn a_tree_is_deployed_and_started_parents_first_then_stopped_children_first() {
        let mut tree = vec![
            desired("/vm", "VM", "target", Wanted::DeployedStarted),
            desired("/vm/tomcat", "Tomcat", "script", Wanted::DeployedStarted),
            desired("/vm/tomcat/war", "War", "script", Wanted::DeployedStarted),
        ];
        let mut observed = BTreeMap::new();
        let mut r = Recorder::default();
        reconcile(&tree, &mut observed, &mut r);
        assert_eq!(
            ran(&r),
            pairs(&[
                ("/vm/tomcat", "deploy"),
                ("/vm/tomcat", "start"),
                ("/vm/tomcat/war", "deploy"),
                ("/vm/tomcat/war", "start"),
            ])
        );
        assert_eq!(observed["/vm/tomcat/war"].state(), State::DeployedStarted);
        // Each script ran with its instance told in the transient state, alone.
        let told: Vec<(&str, State)> = r.told.iter().map(|(p, s)| (p.as_str(), *s)).collect();
        assert_eq!(
            told,
            vec![
                ("/vm/tomcat", State::Deploying),
                ("/vm/tomcat", State::Starting),
                ("/vm/tomcat/war", State::Deploying),
                ("/vm/tomcat/war", State::Starting),
            ]
        );
        // Nothing more to do: nothing runs.
        let mut again = Recorder::default();
        reconcile(&tree, &mut observed, &mut again);
        assert!(again.ran.is_empty());
        // Stop the middle one: its child stops first, then it.
        tree[1].wanted = Wanted::DeployedStopped;
        let mut r = Recorder::default();
        reconcile(&tree, &mut observed, &mut r);
        assert_eq!(
            ran(&r),
            pairs(&[("/vm/tomcat/war", "stop"), ("/vm/tomcat", "stop")])
        );
        assert_eq!(observed["/vm/tomcat"].state(), State::DeployedStopped);
        assert_eq!(
            observed["/vm/tomcat/war"].state(),
            State::WaitingForAncestor
        );
        // Started again: the waiting child starts after it.
        tree[1].wanted = Wanted::DeployedStarted;
        let mut r = Recorder::default();
        reconcile(&tree, &mut observed, &mut r);
        assert_eq!(
            ran(&r),
            pairs(&[("/vm/tomcat", "start"), ("/vm/tomcat/war", "start")])
        );
    }

    #[test]
    fn an_importer_waits_unresolved_then_starts_then_updates_then_stops() {
        let mut web = desired("/vm/web", "Web", "script", Wanted::DeployedStarted);
        web.imports.resolved = false;
        web.imports.missing = vec!["Db".into()];
        web.imports.by_prefix.insert("Db".into(), vec![]);
        let mut tree = vec![desired("/vm", "VM", "target", Wanted::DeployedStarted), web];
        let mut observed = BTreeMap::new();
        let mut r = Recorder::default();
        reconcile(&tree, &mut observed, &mut r);
        assert_eq!(ran(&r), pairs(&[("/vm/web", "deploy")]));
        assert_eq!(observed["/vm/web"].state(), State::Unresolved);
        // A database appears: started, with the import in its environment.
        let db = |port: &str| Import {
            path: "/vm2/db".into(),
            values: BTreeMap::from([("Db.port".to_owned(), port.to_owned())]),
        };
        tree[1].imports = Imports {
            by_prefix: BTreeMap::from([("Db".to_owned(), vec![db("5432")])]),
            resolved: true,
            missing: vec![],
        };
        let mut r = Recorder::default();
        reconcile(&tree, &mut observed, &mut r);
        assert_eq!(ran(&r), pairs(&[("/vm/web", "start")]));
        assert_eq!(
            r.ran[0].2.get("Db_0_port").map(String::as_str),
            Some("5432")
        );
        assert_eq!(
            r.ran[0].2.get("ROBOCONF_FILES_DIR").map(String::as_str),
            Some("/srv/vm/web/files")
        );
        // It changes its port: update, with what changed.
        tree[1]
            .imports
            .by_prefix
            .insert("Db".into(), vec![db("6543")]);
        let mut r = Recorder::default();
        reconcile(&tree, &mut observed, &mut r);
        assert_eq!(ran(&r), pairs(&[("/vm/web", "update")]));
        let env = &r.ran[0].2;
        assert_eq!(
            env.get("ROBOCONF_UPDATE_STATUS").map(String::as_str),
            Some("DEPLOYED_STARTED")
        );
        assert_eq!(
            env.get("ROBOCONF_IMPORT_CHANGED_port").map(String::as_str),
            Some("6543")
        );
        // It goes away: the import is mandatory, so the web server stops, unresolved.
        tree[1].imports = Imports {
            by_prefix: BTreeMap::from([("Db".to_owned(), vec![])]),
            resolved: false,
            missing: vec!["Db".into()],
        };
        let mut r = Recorder::default();
        reconcile(&tree, &mut observed, &mut r);
        assert_eq!(ran(&r), pairs(&[("/vm/web", "stop")]));
        assert_eq!(observed["/vm/web"].state(), State::Unresolved);
    }

    #[test]
    fn an_optional_import_going_away_is_an_update_with_stopped_status() {
        let db = |path: &str| Import {
            path: path.into(),
            values: BTreeMap::from([("Db.port".to_owned(), "1".to_owned())]),
        };
        let mut lb = desired("/vm/lb", "Lb", "script", Wanted::DeployedStarted);
        lb.imports
            .by_prefix
            .insert("Db".into(), vec![db("/a/db"), db("/b/db")]);
        let mut tree = vec![desired("/vm", "VM", "target", Wanted::DeployedStarted), lb];
        let mut observed = BTreeMap::new();
        reconcile(&tree, &mut observed, &mut Recorder::default());
        tree[1]
            .imports
            .by_prefix
            .insert("Db".into(), vec![db("/a/db")]);
        let mut r = Recorder::default();
        reconcile(&tree, &mut observed, &mut r);
        assert_eq!(ran(&r), pairs(&[("/vm/lb", "update")]));
        let env = &r.ran[0].2;
        assert_eq!(
            env.get("ROBOCONF_UPDATE_STATUS").map(String::as_str),
            Some("DEPLOYED_STOPPED")
        );
        assert_eq!(
            env.get("ROBOCONF_IMPORT_CHANGED_INSTANCE_PATH")
                .map(String::as_str),
            Some("/b/db")
        );
        assert_eq!(env.get("Db_size").map(String::as_str), Some("1"));
    }

    #[test]
    fn failures_leave_roboconfs_states_and_are_tried_again_next_time() {
        let tree = vec![
            desired("/vm", "VM", "target", Wanted::DeployedStarted),
            desired("/vm/a", "A", "script", Wanted::DeployedStarted),
            desired("/vm/b", "B", "logger", Wanted::DeployedStarted),
        ];
        let mut observed = BTreeMap::new();
        let mut r = Recorder {
            fail: vec![("/vm/a".into(), Action::Deploy)],
            ..Recorder::default()
        };
        reconcile(&tree, &mut observed, &mut r);
        // A failed deploy leaves it not deployed, with the error; the logger needs no script.
        assert_eq!(observed["/vm/a"].state(), State::NotDeployed);
        assert_eq!(
            observed["/vm/a"].error.as_deref(),
            Some("deploy: exit status 1")
        );
        assert_eq!(observed["/vm/b"].state(), State::DeployedStarted);
        assert_eq!(ran(&r), pairs(&[("/vm/a", "deploy")]));
        // The next call tries again; a failed start goes back to stopped.
        let mut r = Recorder {
            fail: vec![("/vm/a".into(), Action::Start)],
            ..Recorder::default()
        };
        reconcile(&tree, &mut observed, &mut r);
        assert_eq!(ran(&r), pairs(&[("/vm/a", "deploy"), ("/vm/a", "start")]));
        assert_eq!(observed["/vm/a"].state(), State::DeployedStopped);
    }

    #[test]
    fn undeploying_stops_first_and_an_instance_removed_is_forgotten() {
        let mut tree = vec![
            desired("/vm", "VM", "target", Wanted::DeployedStarted),
            desired("/vm/a", "A", "script", Wanted::DeployedStarted),
        ];
        let mut observed = BTreeMap::new();
        reconcile(&tree, &mut observed, &mut Recorder::default());
        tree[1].wanted = Wanted::NotDeployed;
        let mut r = Recorder::default();
        reconcile(&tree, &mut observed, &mut r);
        assert_eq!(ran(&r), pairs(&[("/vm/a", "stop"), ("/vm/a", "undeploy")]));
        assert_eq!(observed["/vm/a"].state(), State::NotDeployed);
        tree.pop();
        reconcile(&tree, &mut observed, &mut Recorder::default());
        assert!(!observed.contains_key("/vm/a"));
    }
}
