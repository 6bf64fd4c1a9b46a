//! Autonomic rules (`rules.autonomic/NAME.drl`): when an event is raised, run commands
//! files. One rule a file, named as the file:
//!
//! ```text
//! rule "NAME"
//! [sleep period is N[s]] [time window is N[s]] [occurrences is N]
//! when EVENT... then COMMANDS... end
//! ```
//!
//! Comments: `#` and `//` to the end of the line, `/* ... */`.

use crate::diagnostic::{Code, Diagnostics};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// After firing, the rule sleeps this long (seconds).
    pub sleep_period: Option<u64>,
    /// The events must all come within this window (seconds).
    pub time_window: Option<u64>,
    /// How many times the events must come (within the window) to fire.
    pub occurrences: u32,
    pub events: Vec<String>,
    /// Commands files, by name without `.commands`, run in order.
    pub commands: Vec<String>,
}

/// The text without its comments, line numbers kept (a comment's lines stay, blank).
fn uncommented(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                out.push(c);
            }
            '#' if !quoted => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if !quoted && chars.peek() == Some(&'/') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '/' if !quoted && chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for d in chars.by_ref() {
                    if d == '\n' {
                        out.push('\n');
                    }
                    if last == '*' && d == '/' {
                        break;
                    }
                    last = d;
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Words with their lines; `;` and `,` separate like blanks.
fn words(text: &str) -> Vec<(String, u32)> {
    let mut out = Vec::new();
    for (index, line) in text.split('\n').enumerate() {
        let number = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let mut rest = line;
        while let Some(start) = rest.find(|c: char| !c.is_whitespace() && c != ';' && c != ',') {
            rest = &rest[start..];
            // A quoted name is one word.
            let end = if let Some(inner) = rest.strip_prefix('"') {
                inner.find('"').map_or(rest.len(), |e| e + 2)
            } else {
                rest.find(|c: char| c.is_whitespace() || c == ';' || c == ',')
                    .unwrap_or(rest.len())
            };
            out.push((rest[..end].to_owned(), number));
            rest = &rest[end..];
        }
    }
    out
}

fn seconds(word: &str) -> Option<u64> {
    word.strip_suffix('s').unwrap_or(word).parse().ok()
}

/// Reads a rule file named `name` (without `.drl`); `file` names it in diagnostics.
pub fn parse(text: &str, name: &str, file: &str, out: &mut Diagnostics) -> Option<Rule> {
    let clean = uncommented(text);
    let words = words(&clean);
    let last_line = words.last().map_or(1, |(_, l)| *l);
    let mut at = 0;
    let syntax = |out: &mut Diagnostics, line: u32, message: String| {
        out.at(Code::RULE_INVALID_SYNTAX, file, line, message);
    };
    let lower = |i: usize| words.get(i).map(|(w, _)| w.to_ascii_lowercase());
    if lower(at).as_deref() != Some("rule") {
        syntax(
            out,
            words.first().map_or(1, |(_, l)| *l),
            "a rule file starts with `rule \"NAME\"`".to_owned(),
        );
        return None;
    }
    at += 1;
    let rule_line = words[0].1;
    let quoted = words
        .get(at)
        .and_then(|(w, _)| w.strip_prefix('"')?.strip_suffix('"'));
    let rule_name = match quoted {
        Some(n) if !n.trim().is_empty() => n.trim().to_owned(),
        _ => {
            out.at(
                Code::RULE_EMPTY_NAME,
                file,
                rule_line,
                "`rule` needs a name in double quotes",
            );
            return None;
        }
    };
    at += 1;
    if rule_name != name {
        syntax(
            out,
            rule_line,
            format!("the rule is named {rule_name:?}: its file must be {rule_name}.drl"),
        );
    }
    let mut rule = Rule {
        name: rule_name,
        sleep_period: None,
        time_window: None,
        occurrences: 1,
        events: Vec::new(),
        commands: Vec::new(),
    };
    // Attributes, until `when`.
    loop {
        let Some(word) = lower(at) else {
            out.at(
                Code::RULE_EMPTY_WHEN,
                file,
                last_line,
                "the rule has no `when`",
            );
            return None;
        };
        let line = words[at].1;
        let phrase = |n: usize| {
            (at..at + n)
                .map(|i| lower(i).unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" ")
        };
        if word == "when" {
            at += 1;
            break;
        }
        let (attribute, take) = if phrase(3) == "sleep period is" {
            ("sleep", 3)
        } else if phrase(3) == "time window is" {
            ("window", 3)
        } else if phrase(2) == "occurrences is" {
            ("occurrences", 2)
        } else {
            syntax(
                out,
                line,
                format!(
                    "unexpected {:?}: attributes are `sleep period is N`, `time window is N`, `occurrences is N`, then `when`",
                    words[at].0
                ),
            );
            return None;
        };
        at += take;
        let value = words.get(at).map(|(w, _)| w.as_str()).unwrap_or_default();
        let ok = match attribute {
            "sleep" => seconds(value)
                .map(|s| rule.sleep_period = Some(s))
                .is_some(),
            "window" => seconds(value).map(|s| rule.time_window = Some(s)).is_some(),
            _ => value
                .parse::<u32>()
                .ok()
                .filter(|n| *n > 0)
                .map(|n| rule.occurrences = n)
                .is_some(),
        };
        if !ok {
            syntax(
                out,
                line,
                format!(
                    "{value:?} is not a number of {}",
                    if attribute == "occurrences" {
                        "times"
                    } else {
                        "seconds"
                    }
                ),
            );
            return None;
        }
        at += 1;
    }
    let when_line = words[at - 1].1;
    while let Some(word) = lower(at) {
        if word == "then" {
            break;
        }
        rule.events.push(words[at].0.clone());
        at += 1;
    }
    if rule.events.is_empty() {
        out.at(
            Code::RULE_EMPTY_WHEN,
            file,
            when_line,
            "`when` names no event",
        );
        return None;
    }
    if lower(at).is_none() {
        syntax(out, last_line, "the rule has no `then`".to_owned());
        return None;
    }
    let then_line = words[at].1;
    at += 1;
    let mut ended = false;
    while let Some(word) = lower(at) {
        if word == "end" {
            ended = true;
            at += 1;
            break;
        }
        rule.commands.push(
            words[at]
                .0
                .strip_suffix(".commands")
                .unwrap_or(&words[at].0)
                .to_owned(),
        );
        at += 1;
    }
    if rule.commands.is_empty() {
        out.at(
            Code::RULE_EMPTY_THEN,
            file,
            then_line,
            "`then` names no commands file",
        );
        return None;
    }
    if !ended {
        syntax(out, last_line, "the rule has no `end`".to_owned());
        return None;
    }
    if let Some((extra, line)) = words.get(at) {
        syntax(
            out,
            *line,
            format!("{extra:?} after `end`: one rule a file"),
        );
    }
    if rule.occurrences > 1 && rule.time_window.is_none() {
        syntax(
            out,
            rule_line,
            "`occurrences is` needs `time window is`".to_owned(),
        );
    }
    Some(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_with_attributes_comments_and_several_commands() {
        let mut out = Diagnostics::default();
        let rule = parse(
            "# scale out\nrule \"scale\" // the name\n  sleep period is 60s\n  time window is 120\n  occurrences is 2\n/* a\n comment */ when\n  cpuHigh\nthen\n  addBackend;\n  notify.commands\nend\n",
            "scale",
            "rules.autonomic/scale.drl",
            &mut out,
        );
        assert!(out.0.is_empty(), "{:?}", out.0);
        assert_eq!(
            rule,
            Some(Rule {
                name: "scale".into(),
                sleep_period: Some(60),
                time_window: Some(120),
                occurrences: 2,
                events: vec!["cpuHigh".into()],
                commands: vec!["addBackend".into(), "notify".into()],
            })
        );
    }

    #[test]
    fn what_does_not_read() {
        let code = |text: &str| {
            let mut out = Diagnostics::default();
            parse(text, "r", "r.drl", &mut out);
            out.0
                .into_iter()
                .map(|d| (d.code, d.line))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            code("rule \"\" when e then c end"),
            vec![(Code::RULE_EMPTY_NAME, Some(1))]
        );
        assert_eq!(
            code("rule \"r\"\nwhen\nthen c end"),
            vec![(Code::RULE_EMPTY_WHEN, Some(2))]
        );
        assert_eq!(
            code("rule \"r\" when e\nthen\nend"),
            vec![(Code::RULE_EMPTY_THEN, Some(2))]
        );
        assert_eq!(
            code("rule \"r\" when e then c"),
            vec![(Code::RULE_INVALID_SYNTAX, Some(1))]
        );
        assert_eq!(
            code("rule \"other\" when e then c end"),
            vec![(Code::RULE_INVALID_SYNTAX, Some(1))]
        );
        assert_eq!(
            code("rule \"r\"\nsleep period is soon\nwhen e then c end"),
            vec![(Code::RULE_INVALID_SYNTAX, Some(2))]
        );
        assert_eq!(
            code("when e then c end"),
            vec![(Code::RULE_INVALID_SYNTAX, Some(1))]
        );
    }
}
