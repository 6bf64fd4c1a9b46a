//! Autonomic management: the probes an agent runs on its started instances
//! (`probes/<Component>.measures`, [`probes`]), and the rules that turn the events they
//! raise into commands ([`Autonomic`]: `rules.autonomic/*.drl`). Pure: the agent
//! measures, the master keeps an `Autonomic` per application and runs the commands.

use std::collections::BTreeMap;

use crate::rules::Rule;

/// A probe of a component: when its measure holds, event `event` is raised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub event: String,
    pub measure: Measure,
    /// The line of its `[EVENT ...]` header.
    pub line: u32,
}

/// What a probe measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Measure {
    /// A file exists (deleted once seen, with `delete if exists`), or, with `notify if
    /// not exists`, does not. A relative path is from the instance's files folder.
    File {
        path: String,
        delete: bool,
        when_missing: bool,
    },
    /// `Check URL THAT NAME OP VALUE`: the URL answers a flat JSON object whose value
    /// NAME compares so with VALUE (as numbers when both are, else `=` as text).
    Rest {
        url: String,
        name: String,
        op: Op,
        value: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "=" | "==" => Op::Eq,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "<" => Op::Lt,
            "<=" => Op::Le,
            _ => return None,
        })
    }

    /// Whether `measured OP threshold` holds.
    pub fn holds(self, measured: &str, threshold: &str) -> bool {
        match (
            measured.trim().parse::<f64>(),
            threshold.trim().parse::<f64>(),
        ) {
            (Ok(m), Ok(t)) => match self {
                Op::Eq => m == t,
                Op::Gt => m > t,
                Op::Ge => m >= t,
                Op::Lt => m < t,
                Op::Le => m <= t,
            },
            _ => self == Op::Eq && measured.trim() == threshold.trim(),
        }
    }
}

/// A problem in a measures file: its line and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct ProbeError {
    pub line: u32,
    pub message: String,
}

/// Reads a measures file: `[EVENT handler name]` blocks, each followed by what the
/// handler measures. `{{ NAME }}` in it is replaced from `values` (the instance's
/// exports, by local or qualified name, and `ip`). Handlers Grove does not run (`nagios`)
/// are errors naming them.
pub fn probes(text: &str, values: &BTreeMap<String, String>) -> (Vec<Probe>, Vec<ProbeError>) {
    let mut found = Vec::new();
    let mut errors = Vec::new();
    let mut current: Option<(u32, String, String, Vec<String>)> = None;
    let finish = |block: Option<(u32, String, String, Vec<String>)>,
                  found: &mut Vec<Probe>,
                  errors: &mut Vec<ProbeError>| {
        let Some((line, handler, event, body)) = block else {
            return;
        };
        let body = substitute(body.join("\n").trim(), values);
        match measure(&handler, &body) {
            Ok(measure) => found.push(Probe {
                event,
                measure,
                line,
            }),
            Err(message) => errors.push(ProbeError { line, message }),
        }
    };
    for (index, raw) in text.lines().enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let line = raw.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_none()) {
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            finish(current.take(), &mut found, &mut errors);
            let words: Vec<&str> = header.split_whitespace().collect();
            match words[..] {
                [keyword, handler, event] if keyword.eq_ignore_ascii_case("event") => {
                    current = Some((
                        number,
                        handler.to_ascii_lowercase(),
                        event.to_owned(),
                        Vec::new(),
                    ));
                }
                _ => errors.push(ProbeError {
                    line: number,
                    message: format!("{line:?}: a block starts with `[EVENT handler name]`"),
                }),
            }
            continue;
        }
        match &mut current {
            Some((_, _, _, body)) => body.push(line.to_owned()),
            None => errors.push(ProbeError {
                line: number,
                message: format!("{line:?} is outside an `[EVENT handler name]` block"),
            }),
        }
    }
    finish(current.take(), &mut found, &mut errors);
    (found, errors)
}

fn substitute(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let Some((inner, next)) = rest[at + 2..].split_once("}}") else {
            out.push_str(&rest[at..]);
            return out;
        };
        let name = inner.trim();
        let value = values.get(name).or_else(|| {
            values
                .iter()
                .find(|(k, _)| k.rsplit_once('.').is_some_and(|(_, local)| local == name))
                .map(|(_, v)| v)
        });
        match value {
            Some(v) => out.push_str(v),
            None => {
                out.push_str("{{");
                out.push_str(inner);
                out.push_str("}}");
            }
        }
        rest = next;
    }
    out.push_str(rest);
    out
}

fn measure(handler: &str, body: &str) -> Result<Measure, String> {
    match handler {
        "file" => {
            if body.contains('\n') || body.is_empty() {
                return Err("the file handler takes one line: [delete if exists | notify if not exists] PATH".to_owned());
            }
            let lower = body.to_ascii_lowercase();
            let (path, delete, when_missing) = if lower.starts_with("delete if exists") {
                (body["delete if exists".len()..].trim(), true, false)
            } else if lower.starts_with("notify if not exists") {
                (body["notify if not exists".len()..].trim(), false, true)
            } else {
                (body, false, false)
            };
            if path.is_empty() {
                return Err("the file handler needs a path".to_owned());
            }
            Ok(Measure::File {
                path: path.to_owned(),
                delete,
                when_missing,
            })
        }
        "rest" => {
            let words: Vec<&str> = body.split_whitespace().collect();
            match words[..] {
                [check, url, that, name, op, value]
                    if check.eq_ignore_ascii_case("check") && that.eq_ignore_ascii_case("that") =>
                {
                    let op = Op::parse(op)
                        .ok_or_else(|| format!("{op:?}: one of =, ==, >, >=, <, <="))?;
                    Ok(Measure::Rest {
                        url: url.to_owned(),
                        name: name.to_owned(),
                        op,
                        value: value.to_owned(),
                    })
                }
                _ => Err(format!(
                    "{body:?}: the rest handler takes `Check URL THAT NAME OP VALUE`"
                )),
            }
        }
        other => Err(format!(
            "handler {other:?} is not run by Grove: `file` or `rest`"
        )),
    }
}

/// What an application's rules remember of the events raised: per rule, when each of
/// its events came (seconds), and until when it sleeps after firing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Autonomic {
    seen: BTreeMap<String, Vec<(String, u64)>>,
    asleep_until: BTreeMap<String, u64>,
}

impl Autonomic {
    /// Event `event` raised at `now`: the commands files to run, in order, of every rule
    /// it makes fire. A rule fires when each of its events came at least `occurrences`
    /// times within its time window (ever since it last fired, without one), unless it
    /// sleeps; then it forgets what it saw and sleeps its sleep period.
    pub fn raised(&mut self, rules: &[Rule], event: &str, now: u64) -> Vec<String> {
        let mut commands = Vec::new();
        for rule in rules.iter().filter(|r| r.events.iter().any(|e| e == event)) {
            let seen = self.seen.entry(rule.name.clone()).or_default();
            seen.push((event.to_owned(), now));
            if let Some(window) = rule.time_window {
                seen.retain(|(_, at)| now.saturating_sub(*at) <= window);
            }
            if self
                .asleep_until
                .get(&rule.name)
                .is_some_and(|until| now < *until)
            {
                continue;
            }
            let needed = u64::from(rule.occurrences.max(1));
            let all = rule.events.iter().all(|e| {
                u64::try_from(seen.iter().filter(|(s, _)| s == e).count()).unwrap_or(u64::MAX)
                    >= needed
            });
            if all {
                seen.clear();
                self.asleep_until
                    .insert(rule.name.clone(), now + rule.sleep_period.unwrap_or(0));
                commands.extend(rule.commands.iter().cloned());
            }
        }
        commands
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        name: &str,
        events: &[&str],
        occurrences: u32,
        window: Option<u64>,
        sleep: Option<u64>,
    ) -> Rule {
        Rule {
            name: name.to_owned(),
            sleep_period: sleep,
            time_window: window,
            occurrences,
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            commands: vec![format!("{name}-commands")],
        }
    }

    /// Rules, the events raised and when, the times a rule fired.
    type Case = (Vec<Rule>, Vec<(&'static str, u64)>, Vec<u64>);

    #[test]
    fn rules_fire_from_a_table_of_events() {
        // (rules, events raised at times, the times a rule fired)
        let cases: Vec<Case> = vec![
            // Once is enough by default; a sleep period holds it back.
            (
                vec![rule("up", &["load"], 1, None, Some(10))],
                vec![("load", 0), ("load", 5), ("load", 10)],
                vec![0, 10],
            ),
            // Three occurrences within 10 s: the slow ones do not count.
            (
                vec![rule("up", &["load"], 3, Some(10), None)],
                vec![
                    ("load", 0),
                    ("load", 20),
                    ("load", 25),
                    ("load", 29),
                    ("load", 30),
                ],
                vec![29],
            ),
            // Both events are needed.
            (
                vec![rule("up", &["load", "queue"], 1, None, None)],
                vec![
                    ("load", 0),
                    ("load", 1),
                    ("queue", 2),
                    ("other", 3),
                    ("queue", 4),
                ],
                vec![2],
            ),
            // An event no rule names does nothing.
            (
                vec![rule("up", &["load"], 1, None, None)],
                vec![("idle", 0)],
                vec![],
            ),
        ];
        for (rules, events, expected) in cases {
            let mut autonomic = Autonomic::default();
            let fired: Vec<u64> = events
                .iter()
                .filter(|(event, at)| !autonomic.raised(&rules, event, *at).is_empty())
                .map(|(_, at)| *at)
                .collect();
            assert_eq!(fired, expected, "{events:?}");
        }
    }

    #[test]
    fn probes_read_with_their_values_and_refuse_what_grove_does_not_run() {
        let values = BTreeMap::from([
            ("Lb.ip".to_owned(), "10.0.0.1".to_owned()),
            ("Lb.httpPort".to_owned(), "10000".to_owned()),
        ]);
        let text = "# probes\n[EVENT file scale-up]\ndelete if exists scale-up.flag\n\n\
                    [EVENT rest overloaded]\nCheck http://{{ ip }}:{{httpPort}}/load THAT load >= 0.8\n\
                    [EVENT nagios down]\nGET hosts\n[EVENT file]\n";
        let (found, errors) = probes(text, &values);
        assert_eq!(
            found,
            vec![
                Probe {
                    event: "scale-up".to_owned(),
                    measure: Measure::File {
                        path: "scale-up.flag".to_owned(),
                        delete: true,
                        when_missing: false
                    },
                    line: 2,
                },
                Probe {
                    event: "overloaded".to_owned(),
                    measure: Measure::Rest {
                        url: "http://10.0.0.1:10000/load".to_owned(),
                        name: "load".to_owned(),
                        op: Op::Ge,
                        value: "0.8".to_owned(),
                    },
                    line: 5,
                },
            ]
        );
        let lines: Vec<u32> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![7, 9], "{errors:?}");
        assert!(errors[0].message.contains("\"nagios\""));
        assert!(Op::Ge.holds("0.80", "0.8") && !Op::Gt.holds("0.8", "0.8"));
        assert!(Op::Eq.holds("busy", "busy") && !Op::Gt.holds("busy", "1"));
    }
}
