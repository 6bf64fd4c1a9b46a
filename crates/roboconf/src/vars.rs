//! Names and variables: the identifier patterns, and the `exports:` and `imports:` lists.

/// A word character as Roboconf's patterns mean it (ASCII letters, digits, `_`).
fn word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn pattern(name: &str, more: impl Fn(char) -> bool) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| word(c) || more(c))
}

/// Component, facet and variable names: a letter or `_`, then word characters, `-`, `.`.
pub fn is_id(name: &str) -> bool {
    pattern(name, |c| matches!(c, '-' | '.'))
}

/// Instance and installer names: as [`is_id`], spaces allowed.
pub fn is_flex_id(name: &str) -> bool {
    pattern(name, |c| matches!(c, '-' | '.' | ' '))
}

/// Application names: as [`is_flex_id`], parentheses allowed.
pub fn is_app_name(name: &str) -> bool {
    pattern(name, |c| matches!(c, '-' | '.' | ' ' | '(' | ')'))
}

/// `text` without a case-insensitive ASCII `prefix`.
pub fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// `text` without a case-insensitive ASCII `suffix`.
fn strip_suffix_ci<'a>(text: &'a str, suffix: &str) -> Option<&'a str> {
    let at = text.len().checked_sub(suffix.len())?;
    let tail = text.get(at..)?;
    tail.eq_ignore_ascii_case(suffix).then(|| &text[..at])
}

/// Splits a list on commas, each item trimmed.
pub fn list(value: &str) -> Vec<&str> {
    if value.trim().is_empty() {
        return Vec::new();
    }
    value.split(',').map(str::trim).collect()
}

/// One entry of an `exports:` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportEntry {
    /// As written: qualified or not.
    pub name: String,
    /// `None`: no value (`name` alone, or `name =` with nothing after it).
    pub value: Option<String>,
    /// `random[kind] name`: the kind.
    pub random: Option<String>,
}

/// What is wrong with an `exports:` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportProblem {
    /// Something other than blanks around a quoted value.
    ComplexValue(String),
    /// A name that is no identifier.
    InvalidName(String),
    /// `external` belongs to imports.
    External(String),
    /// An empty entry.
    EmptyName,
}

/// Reads an `exports:` value: entries split on commas outside double quotes.
pub fn exports(value: &str) -> (Vec<ExportEntry>, Vec<ExportProblem>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    if value.trim().is_empty() {
        return (entries, problems);
    }
    let mut items = Vec::new();
    let mut quoted = false;
    let mut start = 0;
    for (at, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&value[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    items.push(&value[start..]);
    for item in items {
        let (name, raw) = match item.split_once('=') {
            Some((name, raw)) => (name.trim(), Some(raw)),
            None => (item.trim(), None),
        };
        let value = match raw {
            None => None,
            Some(raw) => {
                let trimmed = raw.trim();
                if let Some(inner) = trimmed.strip_prefix('"') {
                    match inner.split_once('"') {
                        Some((text, after)) if after.trim().is_empty() => Some(text.to_owned()),
                        _ => {
                            problems.push(ExportProblem::ComplexValue(item.trim().to_owned()));
                            continue;
                        }
                    }
                } else if trimmed.contains('"') {
                    problems.push(ExportProblem::ComplexValue(item.trim().to_owned()));
                    continue;
                } else if trimmed.is_empty() {
                    None
                } else {
                    Some(trimmed.to_owned())
                }
            }
        };
        let (random, name) = match random_prefix(name) {
            Some((kind, rest)) => (Some(kind), rest),
            None => (None, name),
        };
        if name.is_empty() {
            problems.push(ExportProblem::EmptyName);
            continue;
        }
        let external = strip_prefix_ci(name, "external ").is_some();
        if !is_id(name) {
            problems.push(ExportProblem::InvalidName(name.to_owned()));
            if external {
                problems.push(ExportProblem::External(name.to_owned()));
            }
            continue;
        }
        entries.push(ExportEntry {
            name: name.to_owned(),
            value,
            random,
        });
    }
    (entries, problems)
}

/// `random[kind] name`: the kind and the name.
fn random_prefix(entry: &str) -> Option<(String, &str)> {
    let (kind, rest) = strip_prefix_ci(entry, "random[")?.split_once(']')?;
    Some((kind.trim().to_owned(), rest.trim()))
}

/// One entry of an `imports:` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportEntry {
    /// `Prefix.var` or `Prefix.*`.
    pub name: String,
    pub optional: bool,
    /// From another application, bound by its exports prefix.
    pub external: bool,
}

impl ImportEntry {
    /// The component, facet or application prefix.
    pub fn prefix(&self) -> &str {
        import_prefix(&self.name)
    }

    pub fn is_wildcard(&self) -> bool {
        self.name.ends_with(".*")
    }
}

/// The component, facet or application prefix of an imported name (`Prefix.var`).
pub fn import_prefix(name: &str) -> &str {
    name.rsplit_once('.').map_or("", |(p, _)| p)
}

/// What is wrong with an `imports:` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportProblem {
    EmptyName,
    /// No `.`, or `.` last.
    Incomplete(String),
    Invalid(String),
}

/// Reads an `imports:` value: `[external ]Prefix.var[ (optional)]`, `Prefix.*` too.
pub fn imports(value: &str) -> (Vec<ImportEntry>, Vec<ImportProblem>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for item in list(value) {
        let mut name = item;
        let mut external = false;
        if let Some(rest) = strip_prefix_ci(name, "external ") {
            external = true;
            name = rest.trim_start();
        }
        let mut optional = false;
        if let Some(rest) = strip_suffix_ci(name, "(optional)") {
            optional = true;
            name = rest.trim_end();
        }
        if name.is_empty() {
            problems.push(ImportProblem::EmptyName);
            continue;
        }
        match name.rsplit_once('.') {
            None | Some((_, "")) => {
                problems.push(ImportProblem::Incomplete(name.to_owned()));
                continue;
            }
            Some((prefix, var)) => {
                if !is_id(prefix) || !(var == "*" || is_id(var)) {
                    problems.push(ImportProblem::Invalid(name.to_owned()));
                    continue;
                }
            }
        }
        entries.push(ImportEntry {
            name: name.to_owned(),
            optional,
            external,
        });
    }
    (entries, problems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_with_quotes_randoms_and_empty_values() {
        let (entries, problems) =
            exports("ip, port = 8080, motd = \"a, b; c\", random[port] http, empty =, Other.x = 1");
        assert!(problems.is_empty(), "{problems:?}");
        let got: Vec<_> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.value.as_deref(), e.random.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("ip", None, None),
                ("port", Some("8080"), None),
                ("motd", Some("a, b; c"), None),
                ("http", None, Some("port")),
                ("empty", None, None),
                ("Other.x", Some("1"), None),
            ]
        );
    }

    #[test]
    fn export_problems() {
        let (_, problems) = exports("a = x\"y\", b = \"y\" z, external x, 9z");
        assert_eq!(
            problems,
            vec![
                ExportProblem::ComplexValue("a = x\"y\"".into()),
                ExportProblem::ComplexValue("b = \"y\" z".into()),
                ExportProblem::InvalidName("external x".into()),
                ExportProblem::External("external x".into()),
                ExportProblem::InvalidName("9z".into()),
            ]
        );
    }

    #[test]
    fn imports_with_keywords_in_any_case() {
        let (entries, problems) =
            imports("Tomcat.ip, EXTERNAL Lamp.lb_ip, Mongo.* (OPTIONAL), x, y.");
        assert_eq!(
            problems,
            vec![
                ImportProblem::Incomplete("x".into()),
                ImportProblem::Incomplete("y.".into())
            ]
        );
        assert_eq!(entries.len(), 3);
        assert!(entries[1].external && !entries[1].optional);
        assert!(entries[2].optional && entries[2].is_wildcard());
        assert_eq!(entries[2].prefix(), "Mongo");
    }

    #[test]
    fn patterns() {
        assert!(is_id("Tomcat_8-a.b") && !is_id("9a") && !is_id("a b") && !is_id(""));
        assert!(is_flex_id("Tomcat VM 1") && !is_flex_id("a/b"));
        assert!(is_app_name("Lamp (test) 1.0") && !is_app_name("é"));
    }
}
