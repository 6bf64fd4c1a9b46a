//! Placement from a directory of cases (`tests/cases/*.case`), one `check` each:
//!
//! ```text
//! # what the case shows
//! policy simple
//! ask requester=1 software=sr.cfg zone=eu-1
//! computer A owner=1 shared supplied free=2 used=1 mine=0 zone=eu-1 disk=ssd
//! expect A                      (or: expect-error no computer with label zone=eu-2)
//! ```
//!
//! On an `ask` line, words other than `requester=`, `software=`, `project=` and `needs=`
//! (a size's `millicores/memory/disk`, with the size's name in `size=`) are SLA entries;
//! on a `computer` line, `shared` and `supplied` are flags, `free=`, `used=` and `mine=`
//! (the requester's instances there) counts, `project=` the project it is dedicated to,
//! `room=` what is left of its capacity (`millicores/memory/disk`), any other `key=value`
//! a label.

use std::collections::BTreeMap;
use std::path::Path;

use grove_scheduler::{Ask, Candidate, Policy, Room, SeededDice, place};

fn pairs<'a>(words: impl Iterator<Item = &'a str>) -> Vec<(&'a str, &'a str)> {
    words
        .map(|w| w.split_once('=').unwrap_or((w, "")))
        .collect()
}

fn number(value: &str, line: &str) -> u32 {
    value
        .parse()
        .unwrap_or_else(|_| panic!("{value:?} is not a count in {line:?}"))
}

fn room(value: &str, line: &str) -> Room {
    let parts: Vec<u64> = value
        .split('/')
        .map(|n| {
            n.parse()
                .unwrap_or_else(|_| panic!("{value:?} is not a room in {line:?}"))
        })
        .collect();
    let [millicores, memory, disk] = parts[..] else {
        panic!("{value:?} is not millicores/memory/disk in {line:?}");
    };
    Room {
        millicores,
        memory,
        disk,
    }
}

fn check(path: &Path) {
    let text = std::fs::read_to_string(path).expect("case");
    let mut policy = Policy::Simple;
    let mut ask = None;
    let mut candidates = Vec::new();
    let mut expected = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "policy" => policy = rest.parse().expect("a policy"),
            "ask" => {
                let mut requester = 0;
                let mut software = String::new();
                let mut sla = BTreeMap::new();
                let mut project = None;
                let mut needs = None;
                for (key, value) in pairs(rest.split_whitespace()) {
                    match key {
                        "requester" => requester = i64::from(number(value, line)),
                        "software" => software = value.to_owned(),
                        "project" => project = Some(i64::from(number(value, line))),
                        "needs" => needs = Some(room(value, line)),
                        _ => {
                            sla.insert(key.to_owned(), value.to_owned());
                        }
                    }
                }
                let size = needs.map(|needs| (sla.get("size").cloned().unwrap_or_default(), needs));
                ask = Some(Ask {
                    requester,
                    project,
                    size,
                    software_release: software,
                    sla,
                });
            }
            "computer" => {
                let mut words = rest.split_whitespace();
                let reference = words.next().expect("a reference").to_owned();
                let mut candidate = Candidate {
                    id: i64::try_from(candidates.len()).expect("few") + 1,
                    reference,
                    owner: 0,
                    shared: false,
                    project: None,
                    room: None,
                    labels: BTreeMap::new(),
                    supplied: false,
                    free_partitions: 0,
                    used_partitions: 0,
                    requester_instances: 0,
                };
                for (key, value) in pairs(words) {
                    match key {
                        "owner" => candidate.owner = i64::from(number(value, line)),
                        "shared" => candidate.shared = true,
                        "supplied" => candidate.supplied = true,
                        "free" => candidate.free_partitions = number(value, line),
                        "used" => candidate.used_partitions = number(value, line),
                        "mine" => candidate.requester_instances = number(value, line),
                        "project" => candidate.project = Some(i64::from(number(value, line))),
                        "room" => candidate.room = Some(room(value, line)),
                        _ => {
                            candidate.labels.insert(key.to_owned(), value.to_owned());
                        }
                    }
                }
                candidates.push(candidate);
            }
            "expect" => expected = Some(Ok(rest.to_owned())),
            "expect-error" => expected = Some(Err(rest.to_owned())),
            other => panic!("{}: unknown line {other:?}", path.display()),
        }
    }
    let ask = ask.expect("an ask line");
    let expected = expected.expect("an expect line");
    let got = place(&ask, &candidates, policy, &mut SeededDice::new(7))
        .map(|c| c.reference.clone())
        .map_err(|e| e.to_string());
    assert_eq!(got, expected, "{}", path.display());
}

#[test]
fn every_case() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cases");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("cases")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "case"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 10, "the cases are there");
    for path in paths {
        check(&path);
    }
}

#[test]
fn chance_spreads_over_every_computer_that_fits() {
    let candidates: Vec<Candidate> = ["A", "B", "C"]
        .iter()
        .enumerate()
        .map(|(i, reference)| Candidate {
            id: i64::try_from(i).expect("few"),
            reference: (*reference).to_owned(),
            owner: 1,
            shared: false,
            project: None,
            room: None,
            labels: BTreeMap::new(),
            supplied: true,
            free_partitions: 1,
            used_partitions: 0,
            requester_instances: 0,
        })
        .collect();
    let ask = Ask {
        requester: 1,
        project: None,
        size: None,
        software_release: "sr".to_owned(),
        sla: BTreeMap::new(),
    };
    let mut dice = SeededDice::new(42);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..100 {
        seen.insert(
            place(&ask, &candidates, Policy::Chance, &mut dice)
                .expect("fits")
                .reference
                .clone(),
        );
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
}

#[test]
fn policies_read_from_their_names() {
    for policy in Policy::ALL {
        assert_eq!(policy.name().parse::<Policy>(), Ok(policy));
    }
    let error = "best".parse::<Policy>().expect_err("unknown");
    assert_eq!(
        error.to_string(),
        "unknown placement policy \"best\": simple, chance, zone or pack"
    );
}
