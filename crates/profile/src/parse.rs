//! The line parser: one file's text to sections of raw options.
//!
//! It never fails: every line it cannot read becomes a [`ParseError`] with its line number,
//! and parsing goes on with the next line, so that one run reports every bad line.

use std::collections::BTreeMap;

use crate::cond::{self, Environment};

/// What an option line does to the value it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `name = value`
    Set,
    /// `name += value`: append lines.
    Add,
    /// `name -= value`: remove lines.
    Remove,
}

/// An option name together with its operator, as written in one file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OptKey {
    pub name: String,
    pub op: Op,
}

impl OptKey {
    pub fn set(name: impl Into<String>) -> OptKey {
        OptKey {
            name: name.into(),
            op: Op::Set,
        }
    }
}

impl OptKey {
    /// The name as zc.buildout keeps a key whose increment was never applied (`x +`).
    pub fn display_name(&self) -> String {
        match self.op {
            Op::Set => self.name.clone(),
            _ => self.to_string(),
        }
    }

    pub fn into_display_name(self) -> String {
        match self.op {
            Op::Set => self.name,
            _ => self.to_string(),
        }
    }
}

impl std::fmt::Display for OptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.op {
            Op::Set => f.write_str(&self.name),
            Op::Add => write!(f, "{} +", self.name),
            Op::Remove => write!(f, "{} -", self.name),
        }
    }
}

/// An option value as read from a file, with the line of its option line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawOption {
    pub value: String,
    pub line: u32,
}

/// A parsed section: its options and the line of its first header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RawSection {
    pub line: u32,
    pub options: BTreeMap<OptKey, RawOption>,
    /// How many `+=`/`-=` keys the section has, to skip looking for them when there are none.
    increments: usize,
}

/// One line the parser could not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: u32,
    pub kind: ParseErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseErrorKind {
    /// An option line before the first section header.
    NoSectionHeader(String),
    /// A line that is neither a header, an option, a comment nor a continuation.
    Unparsable(String),
    /// An indented line right after a section header.
    ContinuationWithoutOption(String),
    /// A section condition that could not be evaluated.
    Condition(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            // The line itself is not repeated: the file may be anything a profile URL
            // named (`file:///etc/shadow`), and errors travel to the master.
            ParseErrorKind::NoSectionHeader(_) => {
                write!(f, "option line before any section header")
            }
            ParseErrorKind::Unparsable(_) => write!(f, "unparsable line"),
            ParseErrorKind::ContinuationWithoutOption(_) => {
                write!(
                    f,
                    "indented line after a section header continues no option"
                )
            }
            ParseErrorKind::Condition(msg) => write!(f, "bad section condition: {msg}"),
        }
    }
}

/// The result of parsing one file: the sections in it and every error found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedFile {
    pub sections: BTreeMap<String, RawSection>,
    pub errors: Vec<ParseError>,
}

struct Header<'a> {
    name: &'a str,
    condition: Option<&'a str>,
}

/// Reads a header line: `[name]` or `[name: condition]`, then an optional `#` or `;` comment.
fn parse_header(line: &str) -> Option<Header<'_>> {
    let rest = line.strip_prefix('[')?;
    // A condition may not contain a literal `#` or `;`, so the first one starts the comment.
    let before_comment = match line.find(['#', ';']) {
        Some(i) => &line[..i],
        None => line,
    };
    let before_comment = before_comment.trim_end();
    let inner_end = before_comment.strip_suffix(']')?.len();
    if inner_end == 0 {
        return None;
    }
    let inner = &rest[..inner_end - 1];
    let inner = inner.trim_start();
    let name_len = inner
        .find(|c: char| c.is_whitespace() || "#[]:;{}".contains(c))
        .unwrap_or(inner.len());
    if name_len == 0 {
        return None;
    }
    let (name, after) = inner.split_at(name_len);
    let after = after.trim_start();
    if let Some(expr) = after.strip_prefix(':') {
        Some(Header {
            name,
            condition: Some(expr),
        })
    } else if after.trim().is_empty() {
        Some(Header {
            name,
            condition: None,
        })
    } else {
        None
    }
}

/// Splits an option line into its name (with any `+`/`-` marker) and its value.
fn option_start(line: &str) -> Option<(&str, &str)> {
    let eq = line.find('=')?;
    let name = &line[..eq];
    let value = &line[eq + 1..];
    // name: one or more characters outside whitespace and `{}[]=:`, then optional
    // whitespace, then an optional `+` or `-`.
    let core_len = name
        .find(|c: char| c.is_whitespace() || "{}[]:".contains(c))
        .unwrap_or(name.len());
    if core_len == 0 {
        return None;
    }
    let tail = name[core_len..].trim_start();
    if !(tail.is_empty() || tail == "+" || tail == "-") {
        return None;
    }
    Some((name, value))
}

/// The option being read: its value grows with continuation lines until the next option,
/// header or the end of the file.
struct Pending {
    key: OptKey,
    /// Text on the option line itself (an increment then starts on a new line).
    inline: bool,
    value: String,
    line: u32,
}

/// Puts a finished option into its section.
fn flush(out: &mut ParsedFile, section: Option<&String>, pending: Option<Pending>) {
    let (Some(section), Some(p)) = (section, pending) else {
        return;
    };
    let Some(section) = out.sections.get_mut(section) else {
        return;
    };
    match section.options.get_mut(&p.key) {
        // Several increments of one option in one file accumulate (conditional sections
        // make this common).
        Some(existing) if p.key.op != Op::Set => {
            let trimmed_len = existing.value.trim_end().len();
            existing.value.truncate(trimmed_len);
            if p.inline {
                existing.value.push('\n');
            }
            existing.value.push_str(&p.value);
        }
        _ => {
            if p.key.op == Op::Set {
                if section.increments > 0 {
                    // An assignment after an increment in the same file replaces it.
                    for op in [Op::Add, Op::Remove] {
                        let key = OptKey {
                            name: p.key.name.clone(),
                            op,
                        };
                        section.options.remove(&key);
                    }
                }
            } else {
                section.increments += 1;
            }
            let option = RawOption {
                value: p.value,
                line: p.line,
            };
            section.options.insert(p.key, option);
        }
    }
}

/// Parses one file's text. Conditional sections are evaluated against `env`.
pub fn parse(text: &str, env: &Environment) -> ParsedFile {
    parse_with(text, env, &NoFiles)
}

/// A host of conditions with no file at all.
struct NoFiles;

impl crate::load::Loader for NoFiles {
    fn load(&self, _: &str) -> Result<String, crate::load::LoadError> {
        Err(crate::load::LoadError::NotFound)
    }
}

/// Parses one file, its section conditions reading the machine through `host` (paths
/// tested, files read; nothing written).
pub fn parse_with(text: &str, env: &Environment, host: &dyn crate::load::Loader) -> ParsedFile {
    let mut out = ParsedFile::default();
    // The condition of the current header; options of a false section are dropped.
    let mut section_condition = true;
    let mut cursect: Option<String> = None;
    let mut pending: Option<Pending> = None;
    let mut blockmode = false;

    let text = if text.contains('\r') {
        std::borrow::Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    for (index, line) in text.split('\n').enumerate() {
        let lineno = u32::try_from(index + 1).unwrap_or(u32::MAX);
        let first = line.chars().next();
        if matches!(first, Some('#' | ';')) {
            continue;
        }
        // An empty line is a line holding only its newline: white space.
        let starts_with_space = first.is_none_or(char::is_whitespace);
        if starts_with_space && cursect.is_some() && pending.is_some() {
            if !section_condition {
                continue;
            }
            let piece = if blockmode {
                line.trim_end()
            } else {
                line.trim()
            };
            if !blockmode && piece.is_empty() {
                continue;
            }
            if let Some(p) = pending.as_mut() {
                p.value.push('\n');
                p.value.push_str(piece);
            }
            continue;
        }
        if let Some(header) = parse_header(line) {
            section_condition = true;
            if let Some(expr) = header.condition
                && !expr.is_empty()
            {
                let expr = expr.replace(r"\x23", "#").replace(r"\x3b", ";");
                match cond::evaluate(&expr, env, host) {
                    Ok(value) => section_condition = value,
                    Err(message) => {
                        out.errors.push(ParseError {
                            line: lineno,
                            kind: ParseErrorKind::Condition(message),
                        });
                        section_condition = false;
                    }
                }
                if !section_condition {
                    continue;
                }
            }
            flush(&mut out, cursect.as_ref(), pending.take());
            if !out.sections.contains_key(header.name) {
                let section = RawSection {
                    line: lineno,
                    ..RawSection::default()
                };
                out.sections.insert(header.name.to_owned(), section);
            }
            cursect = Some(header.name.to_owned());
            continue;
        }
        if !section_condition {
            // Lines of a section whose condition is false, even when it is the first
            // section of the file (zc.buildout 6.0.1 then wrongly reports a missing header).
            continue;
        }
        if cursect.is_none() {
            if !line.trim().is_empty() {
                out.errors.push(ParseError {
                    line: lineno,
                    kind: ParseErrorKind::NoSectionHeader(line.to_owned()),
                });
            }
            continue;
        }
        let rewritten;
        let line_for_option = if let Some(rest) = line.strip_prefix("=>") {
            rewritten = format!("<part-dependencies> = {rest}");
            rewritten.as_str()
        } else {
            line
        };
        if let Some((raw_name, raw_value)) = option_start(line_for_option) {
            let name = raw_name.trim_end();
            let value = raw_value.trim();
            let key = match name.as_bytes().last() {
                Some(b'+') => OptKey {
                    name: name[..name.len() - 1].trim_end().to_owned(),
                    op: Op::Add,
                },
                Some(b'-') => OptKey {
                    name: name[..name.len() - 1].trim_end().to_owned(),
                    op: Op::Remove,
                },
                _ => OptKey::set(name),
            };
            flush(&mut out, cursect.as_ref(), pending.take());
            if key.name.is_empty() {
                out.errors.push(ParseError {
                    line: lineno,
                    kind: ParseErrorKind::Unparsable(line.to_owned()),
                });
                continue;
            }
            pending = Some(Pending {
                key,
                inline: !value.is_empty(),
                value: value.to_owned(),
                line: lineno,
            });
            blockmode = value.is_empty();
        } else if pending.is_none() && line.trim().is_empty() {
            continue;
        } else if pending.is_none() && starts_with_space {
            out.errors.push(ParseError {
                line: lineno,
                kind: ParseErrorKind::ContinuationWithoutOption(line.to_owned()),
            });
        } else {
            out.errors.push(ParseError {
                line: lineno,
                kind: ParseErrorKind::Unparsable(line.to_owned()),
            });
        }
    }
    flush(&mut out, cursect.as_ref(), pending.take());

    for section in out.sections.values_mut() {
        for opt in section.options.values_mut() {
            if opt.value.starts_with(char::is_whitespace) {
                opt.value = strip_leading_blank_lines(&dedent(opt.value.trim_end()));
            }
        }
    }
    out
}

/// Python's `textwrap.dedent`: removes the longest common run of leading spaces and tabs.
fn dedent(text: &str) -> String {
    let lines: Vec<&str> = text.split('\n').collect();
    let is_blank = |l: &str| l.chars().all(|c| c == ' ' || c == '\t');
    let mut margin: Option<&str> = None;
    for line in &lines {
        if is_blank(line) {
            continue;
        }
        let indent_len = line.len() - line.trim_start_matches([' ', '\t']).len();
        let indent = &line[..indent_len];
        margin = Some(match margin {
            None => indent,
            Some(m) => {
                let common = m
                    .bytes()
                    .zip(indent.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                &m[..common]
            }
        });
    }
    let margin = margin.unwrap_or("");
    let mut out = String::with_capacity(text.len());
    for (i, line) in lines.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if is_blank(line) {
            continue;
        }
        out.push_str(line.strip_prefix(margin).unwrap_or(line));
    }
    out
}

/// Removes the blank lines at the start of a block value.
fn strip_leading_blank_lines(text: &str) -> String {
    let mut rest = text;
    while let Some(newline) = rest.find('\n') {
        if rest[..newline].trim().is_empty() {
            rest = &rest[newline + 1..];
        } else {
            break;
        }
    }
    rest.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedent_keeps_relative_indentation() {
        assert_eq!(dedent("\n  a\n    b\n\n  c"), "\na\n  b\n\nc");
        assert_eq!(dedent("\n\ta\n  b"), "\n\ta\n  b");
    }

    #[test]
    fn headers() {
        let h = parse_header("[  s2  ] ; comment [x]").map(|h| h.name);
        assert_eq!(h, Some("s2"));
        let h = parse_header("[s: 2 + 2 == 4] # c").and_then(|h| h.condition);
        assert_eq!(h, Some(" 2 + 2 == 4"));
        assert!(parse_header("[a b]").is_none());
        assert!(parse_header("[]").is_none());
        assert!(parse_header("[a]]").is_none());
    }
}
