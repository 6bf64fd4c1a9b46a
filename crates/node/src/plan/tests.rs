//! The planner from tables: a memory, the facts and the time in, the work out.

use super::*;

const SR: &str = "https://example.test/sr.cfg";

fn timing() -> Timing {
    Timing {
        first_retry: Duration::from_secs(1),
        max_retry: Duration::from_secs(60),
        build_first_retry: Duration::from_secs(10),
        build_max_retry: Duration::from_secs(600),
        promise_interval: Duration::from_secs(60),
    }
}

fn instance(id: i64, timestamp: i64, state: api::RequestedState) -> api::PartitionInstance {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "title": "t",
        "root_title": "t",
        "software_release": SR,
        "software_type": "default",
        "requested_state": state.as_str(),
        "parameters": {},
        "connection": {},
        "shared_instances": [],
        "timestamp": timestamp,
        "token": "g1.p.1.x",
    }))
    .expect("a partition instance")
}

fn software(
    requested: api::SupplyState,
    reported: Option<api::SoftwareState>,
) -> api::SoftwareInstallation {
    serde_json::from_value(serde_json::json!({
        "software_release": SR,
        "requested_state": requested,
        "reported_state": reported,
        "error": null,
    }))
    .expect("a software installation")
}

fn desired(
    software: Vec<api::SoftwareInstallation>,
    partitions: Vec<(&str, Option<api::PartitionInstance>)>,
) -> api::DesiredState {
    serde_json::from_value(serde_json::json!({
        "computer": "c",
        "revision": 1,
        "software": software,
        "partitions": partitions
            .into_iter()
            .map(|(reference, instance)| serde_json::json!({
                "reference": reference,
                "addresses": [],
                "instance": instance,
            }))
            .collect::<Vec<_>>(),
    }))
    .expect("a desired state")
}

fn facts(installed: bool, present: bool) -> Facts {
    let mut facts = Facts::default();
    if installed {
        facts.installed.insert(SR.to_owned());
    }
    if present {
        facts.present.insert(SR.to_owned());
    }
    facts.slots.insert("p0".to_owned());
    facts
}

fn done(instance: &api::PartitionInstance, at: Instant) -> Done {
    Done {
        instance: instance.id,
        timestamp: instance.timestamp,
        state: instance.requested_state,
        at,
        periodicity: Some(Duration::from_secs(3600)),
        retry: None,
        checked: at,
    }
}

/// The work as short words: `build`, `report`, `remove`, `deploy p0`...
fn words(work: &[Work]) -> Vec<String> {
    work.iter()
        .map(|w| match w {
            Work::Build(_) => "build".to_owned(),
            Work::ReportAvailable(_) => "report".to_owned(),
            Work::Remove(_) => "remove".to_owned(),
            Work::Deploy(p, _) => format!("deploy {p}"),
            Work::Stop(p, _) => format!("stop {p}"),
            Work::Destroy(p, _) => format!("destroy {p}"),
            Work::Free(p) => format!("free {p}"),
            Work::CheckPromises(p, _) => format!("check {p}"),
            Work::RunAction(p, a) => format!("action {} {p}", a.id),
            Work::ReportAction(id, _) => format!("report action {id}"),
        })
        .collect()
}

use api::RequestedState::{Destroyed, Started, Stopped};
use api::SoftwareState as Reported;
use api::SupplyState::{Available, Destroyed as Removed};

#[test]
fn software_from_a_table() {
    let now = Instant::now();
    let later = now + Duration::from_secs(5);
    let retry = |at| SoftwareMemory {
        retry: Some(Retry {
            at,
            backoff: Duration::from_secs(10),
        }),
        reported: None,
    };
    // (case, requested, reported at the master, installed, present, memory, expected)
    let cases: Vec<(&str, _, _, bool, bool, SoftwareMemory, &[&str])> = vec![
        (
            "missing: build",
            Available,
            None,
            false,
            false,
            SoftwareMemory::default(),
            &["build"],
        ),
        (
            "installed, reported: nothing",
            Available,
            Some(Reported::Available),
            true,
            true,
            SoftwareMemory::default(),
            &[],
        ),
        (
            "installed, not reported",
            Available,
            Some(Reported::Building),
            true,
            true,
            SoftwareMemory::default(),
            &["report"],
        ),
        (
            "installed, reported since",
            Available,
            None,
            true,
            true,
            SoftwareMemory {
                retry: None,
                reported: Some(Reported::Available),
            },
            &[],
        ),
        (
            "a retry later: nothing",
            Available,
            None,
            false,
            false,
            retry(later),
            &[],
        ),
        (
            "a retry now: build",
            Available,
            None,
            false,
            false,
            retry(now),
            &["build"],
        ),
        (
            "removed, still there",
            Removed,
            Some(Reported::Destroyed),
            false,
            true,
            SoftwareMemory::default(),
            &["remove"],
        ),
        (
            "removed, not reported",
            Removed,
            Some(Reported::Available),
            false,
            false,
            SoftwareMemory::default(),
            &["remove"],
        ),
        (
            "removed and reported",
            Removed,
            Some(Reported::Destroyed),
            false,
            false,
            SoftwareMemory::default(),
            &[],
        ),
    ];
    for (case, requested, reported, installed, present, remembered, expected) in cases {
        let mut memory = Memory {
            desired: Some(desired(vec![software(requested, reported)], vec![])),
            ..Memory::default()
        };
        memory.software.insert(SR.to_owned(), remembered);
        let work = due(&memory, &facts(installed, present), &timing(), now);
        assert_eq!(words(&work), expected, "{case}");
    }
}

/// (case, instance, installed, what is remembered, expected work)
type PartitionCase = (
    &'static str,
    Option<api::PartitionInstance>,
    bool,
    Option<Done>,
    &'static [&'static str],
);

#[test]
fn partitions_from_a_table() {
    let now = Instant::now();
    let hour_ago = now - Duration::from_secs(3601);
    let started = instance(7, 100, Started);
    let failed = |at: Instant| {
        let mut d = done(&started, now);
        d.retry = Some(Retry {
            at,
            backoff: Duration::from_secs(1),
        });
        d
    };
    // (case, instance, installed, what is remembered, expected)
    let cases: Vec<PartitionCase> = vec![
        (
            "new: deploy",
            Some(started.clone()),
            true,
            None,
            &["deploy p0"],
        ),
        (
            "software missing: wait",
            Some(started.clone()),
            false,
            None,
            &[],
        ),
        (
            "done, nothing changed",
            Some(started.clone()),
            true,
            Some(done(&started, now)),
            &[],
        ),
        (
            "newer timestamp",
            Some(instance(7, 101, Started)),
            true,
            Some(done(&started, now)),
            &["deploy p0"],
        ),
        (
            "another instance",
            Some(instance(8, 100, Started)),
            true,
            Some(done(&started, now)),
            &["deploy p0"],
        ),
        (
            "periodicity passed",
            Some(started.clone()),
            true,
            Some(done(&started, hour_ago)),
            &["deploy p0"],
        ),
        (
            "failed, retry later",
            Some(started.clone()),
            true,
            Some(failed(now + Duration::from_secs(1))),
            &[],
        ),
        (
            "failed, retry due",
            Some(started.clone()),
            true,
            Some(failed(now)),
            &["deploy p0"],
        ),
        (
            "stop, even without software",
            Some(instance(7, 100, Stopped)),
            false,
            None,
            &["stop p0"],
        ),
        (
            "destroy",
            Some(instance(7, 100, Destroyed)),
            false,
            Some(done(&started, now)),
            &["destroy p0"],
        ),
        (
            "freed, known",
            None,
            true,
            Some(done(&started, now)),
            &["free p0"],
        ),
        ("freed, unknown", None, true, None, &[]),
        (
            "freed, unknown, services left running",
            None,
            false,
            None,
            &["free p0"],
        ),
        (
            "promises due",
            Some(started.clone()),
            true,
            Some(Done {
                periodicity: None,
                ..done(&started, now - Duration::from_secs(61))
            }),
            &["check p0"],
        ),
    ];
    for (case, instance, installed, remembered, expected) in cases {
        let mut memory = Memory {
            desired: Some(desired(
                vec![],
                vec![("p0", instance), ("unformatted", None)],
            )),
            ..Memory::default()
        };
        if let Some(remembered) = remembered {
            memory.partitions.insert("p0".to_owned(), remembered);
        }
        let mut facts = facts(installed, installed);
        if case.contains("services left running") {
            facts.occupied.insert("p0".to_owned());
        }
        let work = due(&memory, &facts, &timing(), now);
        assert_eq!(words(&work), expected, "{case}");
    }
}

#[test]
fn work_under_way_is_not_started_twice() {
    let now = Instant::now();
    let mut memory = Memory {
        desired: Some(desired(
            vec![software(Available, None)],
            vec![("p0", Some(instance(1, 1, Started)))],
        )),
        ..Memory::default()
    };
    let facts = facts(true, true);
    assert_eq!(
        words(&due(&memory, &facts, &timing(), now)),
        ["report", "deploy p0"]
    );
    memory.busy.insert(Key::Partition("p0".to_owned()));
    memory.busy.insert(Key::Software(SR.to_owned()));
    assert!(due(&memory, &facts, &timing(), now).is_empty());
}

#[test]
fn outcomes_settle_into_memory() {
    let now = Instant::now();
    let timing = timing();
    let started = instance(7, 100, Started);
    let mut memory = Memory::default();
    // A failed deployment retries after 1 s, then 2 s; a success clears it.
    for (ok, expected) in [(false, Some(1)), (false, Some(2)), (true, None)] {
        memory.settle(
            Outcome::Partition {
                reference: "p0".to_owned(),
                instance: started.clone(),
                ok,
                periodicity: None,
            },
            &timing,
            now,
        );
        let backoff = memory.partitions["p0"].retry.map(|r| r.backoff.as_secs());
        assert_eq!(backoff, expected);
    }
    // A failed build waits 10 s, then 20 s; a built release that the master did not hear
    // of is reported again soon.
    let settle_software = |memory: &mut Memory, built, report_failed| {
        memory.settle(
            Outcome::Software {
                url: SR.to_owned(),
                built,
                reported: None,
                report_failed,
            },
            &timing,
            now,
        );
        memory.software[SR].retry.map(|r| r.backoff.as_secs())
    };
    assert_eq!(settle_software(&mut memory, Some(false), false), Some(10));
    assert_eq!(settle_software(&mut memory, Some(false), true), Some(20));
    assert_eq!(settle_software(&mut memory, Some(true), false), None);
    assert_eq!(settle_software(&mut memory, Some(true), true), Some(1));
    assert_eq!(memory.failures(), [SR.to_owned()]);
    // A failed promise check makes the partition due again soon.
    memory.settle(
        Outcome::Promises {
            reference: "p0".to_owned(),
            instance: started.clone(),
            ok: false,
        },
        &timing,
        now,
    );
    assert_eq!(memory.failures(), [SR.to_owned(), "p0".to_owned()]);
    assert_eq!(
        next_wake(&memory, &timing),
        Some(now + Duration::from_secs(1))
    );
    memory.settle(Outcome::Freed("p0".to_owned()), &timing, now);
    assert!(!memory.partitions.contains_key("p0"));
}

#[test]
fn a_newer_desired_state_forgets_what_was_reported() {
    let mut memory = Memory::default();
    memory.software.insert(
        SR.to_owned(),
        SoftwareMemory {
            retry: None,
            reported: Some(Reported::Available),
        },
    );
    let state = desired(vec![], vec![]);
    assert!(memory.take_desired(state.clone()));
    assert_eq!(memory.software[SR].reported, None);
    memory.software.get_mut(SR).expect("kept").reported = Some(Reported::Available);
    assert!(!memory.take_desired(state));
    assert_eq!(memory.software[SR].reported, Some(Reported::Available));
}

#[test]
fn service_names_read_back() {
    let name = ServiceName::new("slappart3", "redis");
    assert_eq!(name.to_string(), "slappart3/redis");
    assert_eq!(ServiceName::parse("slappart3/redis"), Some(name));
    assert!(ServiceName::is_in("slappart3/redis", "slappart3"));
    assert!(!ServiceName::is_in("slappart30/redis", "slappart3"));
    assert_eq!(ServiceName::parse("plain"), None);
}

fn with_actions(mut instance: api::PartitionInstance, ids: &[i64]) -> api::PartitionInstance {
    instance.actions = ids
        .iter()
        .map(|id| api::actions::PendingAction {
            id: *id,
            name: "status".to_owned(),
            parameters: Default::default(),
        })
        .collect();
    instance
}

fn outcome(error: Option<&str>) -> api::actions::ActionOutcome {
    api::actions::ActionOutcome {
        result: error.is_none().then_some(serde_json::Value::Null),
        error: error.map(str::to_owned),
    }
}

/// Actions run once their partition was deployed for the instance, once each; an
/// outcome the master did not take is reported again after a delay, and an action the
/// master no longer lists is forgotten.
#[test]
fn actions_from_a_table() {
    let now = Instant::now();
    let later = now + Duration::from_secs(5);
    let t = timing();
    let facts = facts(true, true);
    let started = with_actions(instance(1, 10, Started), &[7, 8]);
    let mut memory = Memory::default();
    memory.take_desired(desired(vec![], vec![("p0", Some(started.clone()))]));
    // Not deployed yet: the deployment, no action.
    assert_eq!(words(&due(&memory, &facts, &t, now)), ["deploy p0"]);
    memory
        .partitions
        .insert("p0".to_owned(), done(&started, now));
    assert_eq!(
        words(&due(&memory, &facts, &t, now)),
        ["action 7 p0", "action 8 p0"]
    );
    // 7 reported, 8 not: 8 is reported again after the first retry, never run again.
    memory.settle(
        Outcome::Action {
            id: 7,
            unreported: None,
        },
        &t,
        now,
    );
    memory.settle(
        Outcome::Action {
            id: 8,
            unreported: Some(outcome(Some("boom"))),
        },
        &t,
        now,
    );
    assert!(words(&due(&memory, &facts, &t, now)).is_empty());
    assert_eq!(next_wake(&memory, &t), Some(now + t.first_retry));
    assert_eq!(words(&due(&memory, &facts, &t, later)), ["report action 8"]);
    memory.settle(
        Outcome::Action {
            id: 8,
            unreported: None,
        },
        &t,
        later,
    );
    assert!(words(&due(&memory, &facts, &t, later)).is_empty());
    // The master took both: they leave the memory with the next desired state.
    let mut next = desired(vec![], vec![("p0", Some(instance(1, 10, Started)))]);
    next.revision = 2;
    memory.take_desired(next);
    assert!(memory.actions.is_empty());
    // A partition deployed for another instance, or being destroyed, runs none.
    let other = with_actions(instance(2, 11, Started), &[9]);
    memory.take_desired(desired(vec![], vec![("p0", Some(other))]));
    assert_eq!(words(&due(&memory, &facts, &t, later)), ["deploy p0"]);
    let going = with_actions(instance(1, 12, Destroyed), &[9]);
    memory.take_desired(desired(vec![], vec![("p0", Some(going))]));
    assert_eq!(words(&due(&memory, &facts, &t, later)), ["destroy p0"]);
}
