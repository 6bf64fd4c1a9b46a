//! Merging files, defaults and command-line assignments into one raw configuration.
//!
//! Every value keeps its history (set, added to, removed from, overridden) with where each
//! step came from, which is what `annotate` prints and what errors point at.

use std::collections::BTreeMap;

use crate::parse::{Op, OptKey};

/// Where a step of a value's history came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A line of a loaded file (index into [`crate::Profile::files`]).
    File { file: u32, line: u32 },
    /// A built-in default of the `[buildout]` section.
    Default,
    /// Computed by the engine (`buildout:directory`, absolute directories).
    Computed,
    /// A `section:option=value` assignment given by the caller.
    CommandLine,
    /// The empty value an increment applies to when nothing was set before.
    Implicit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Set,
    Add,
    Remove,
    Override,
    Directory,
}

/// One step of a value's history: what was done, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryItem {
    pub step: Step,
    pub origin: Origin,
}

/// A raw (unsubstituted) option value with its history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionKey {
    pub value: String,
    /// The first step (always a set).
    first: HistoryItem,
    /// The steps after it, oldest first (empty, and so not allocated, for most values).
    later: Vec<HistoryItem>,
}

impl SectionKey {
    pub fn new(value: impl Into<String>, origin: Origin) -> SectionKey {
        let value = value.into();
        SectionKey {
            first: HistoryItem {
                step: Step::Set,
                origin,
            },
            later: Vec::new(),
            value,
        }
    }

    /// Every step that made the value, oldest first.
    pub fn history(&self) -> impl DoubleEndedIterator<Item = &HistoryItem> {
        std::iter::once(&self.first).chain(&self.later)
    }

    fn last(&self) -> &HistoryItem {
        self.later.last().unwrap_or(&self.first)
    }

    /// Where the current value was last set, added to or removed from.
    pub fn origin(&self) -> Origin {
        self.last().origin
    }

    /// The file position of the line that last changed this value, if any.
    pub fn file_origin(&self) -> Option<Origin> {
        self.history()
            .rev()
            .map(|h| h.origin)
            .find(|o| matches!(o, Origin::File { .. }))
    }

    fn override_with(&mut self, other: SectionKey) {
        let last_is_increment = matches!(other.last().step, Step::Add | Step::Remove);
        if last_is_increment {
            self.value = other.value;
            self.first = other.first;
            self.later = other.later;
        } else {
            let origin = other.origin();
            self.later.push(HistoryItem {
                step: Step::Override,
                origin,
            });
            self.value = other.value;
        }
    }

    pub fn set_directory(&mut self, value: String) {
        let origin = self.origin();
        self.later.push(HistoryItem {
            step: Step::Directory,
            origin,
        });
        self.value = value;
    }

    fn add(&mut self, added: &str, origin: Origin) {
        self.value.push('\n');
        self.value.push_str(added);
        self.later.push(HistoryItem {
            step: Step::Add,
            origin,
        });
    }

    fn remove(&mut self, removed: &str, origin: Origin) {
        let removed_lines: Vec<&str> = removed.split('\n').collect();
        let kept: Vec<&str> = self
            .value
            .split('\n')
            .filter(|l| !removed_lines.contains(l))
            .collect();
        self.value = kept.join("\n");
        self.later.push(HistoryItem {
            step: Step::Remove,
            origin,
        });
    }
}

/// One section's raw options. Keys keep their operator until the increment is applied:
/// a section that uses a macro keeps its `+=`/`-=` until the macro is expanded.
pub type Section = BTreeMap<OptKey, SectionKey>;

/// All sections, by name.
pub type Sections = BTreeMap<String, Section>;

/// Applies `s2` on top of `s1`: plain values override, increments apply to the value in
/// `s2` if it sets one, else to the one in `s1`, else to an implicit empty value.
pub(crate) fn update_section(s1: &mut Section, mut s2: Section) {
    if s1.is_empty() && s2.keys().all(|k| k.op == Op::Set) {
        *s1 = s2;
        return;
    }
    let increments: Vec<OptKey> = s2.keys().filter(|k| k.op != Op::Set).cloned().collect();
    // `+=` is applied before `-=` for the same name (the keys sort that way).
    for key in increments {
        let Some(change) = s2.remove(&key) else {
            continue;
        };
        let plain = OptKey::set(key.name.clone());
        let mut base = s2
            .get(&plain)
            .or_else(|| s1.get(&plain))
            .cloned()
            .unwrap_or_else(|| SectionKey::new("", Origin::Implicit));
        let origin = change.origin();
        match key.op {
            Op::Add => base.add(&change.value, origin),
            Op::Remove => base.remove(&change.value, origin),
            Op::Set => {}
        }
        s2.insert(plain, base);
    }
    for (key, value) in s2 {
        match s1.get_mut(&key) {
            Some(existing) => existing.override_with(value),
            None => {
                s1.insert(key, value);
            }
        }
    }
}

/// Applies every section of `d2` on top of `d1`.
pub(crate) fn update(d1: &mut Sections, d2: Sections) {
    for (name, section) in d2 {
        if let Some(existing) = d1.get_mut(&name) {
            update_section(existing, section);
        } else if section.contains_key(&OptKey::set("<")) {
            // A macro user keeps its increments until the macro is expanded, when the
            // values they apply to are known.
            d1.insert(name, section);
        } else {
            d1.insert(name, new_section(section));
        }
    }
}

/// Sections merged once and shared: a file's bases and the file, applied again wherever
/// the file is reached (sections are shared between the deltas that hold them unchanged).
pub(crate) type Delta = BTreeMap<String, std::rc::Rc<Section>>;

/// Applies one section on top of `d1[name]` as [`update`] does.
fn update_one(d1: &mut Sections, name: &str, section: Section) {
    let mut one = Sections::new();
    one.insert(name.to_owned(), section);
    update(d1, one);
}

/// Applies a delta on top of `d1` as [`update`] would; a section `d1` already holds as
/// it is in the delta is left alone (a base applied again on a diamond).
pub(crate) fn update_from(d1: &mut Sections, delta: &Delta) {
    for (name, section) in delta {
        if d1.get(name) == Some(&**section) {
            continue;
        }
        update_one(d1, name, (**section).clone());
    }
}

/// Applies `section` on top of the delta's section `name`, sharing what does not change.
pub(crate) fn update_delta(delta: &mut Delta, name: &str, section: std::rc::Rc<Section>) {
    match delta.get(name) {
        None if section.keys().all(|k| k.op == Op::Set)
            && !section.contains_key(&OptKey::set("<")) =>
        {
            delta.insert(name.to_owned(), section);
        }
        Some(existing) if std::rc::Rc::ptr_eq(existing, &section) || **existing == *section => {}
        existing => {
            let mut one = Sections::new();
            if let Some(existing) = existing {
                one.insert(name.to_owned(), (**existing).clone());
            }
            update_one(&mut one, name, (*section).clone());
            if let Some(merged) = one.remove(name) {
                delta.insert(name.to_owned(), std::rc::Rc::new(merged));
            }
        }
    }
}

/// A section seen for the first time: an increment with nothing before it sets the value
/// (`+=`) or empties it (`-=`).
fn new_section(mut section: Section) -> Section {
    let increments: Vec<OptKey> = section
        .keys()
        .filter(|k| k.op != Op::Set)
        .cloned()
        .collect();
    if increments.is_empty() {
        return section;
    }
    for key in increments {
        let plain = OptKey::set(key.name.clone());
        if section.contains_key(&plain) {
            continue;
        }
        let Some(mut value) = section.remove(&key) else {
            continue;
        };
        if key.op == Op::Remove {
            let own = value.value.clone();
            value.remove(&own, Origin::Implicit);
        }
        section.insert(plain, value);
    }
    let mut out = Section::new();
    update_section(&mut out, section);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(items: &[(&str, Op, &str)]) -> Section {
        items
            .iter()
            .map(|(n, op, v)| {
                (
                    OptKey {
                        name: (*n).to_owned(),
                        op: *op,
                    },
                    SectionKey::new(*v, Origin::CommandLine),
                )
            })
            .collect()
    }

    fn values(s: &Section) -> Vec<(String, String)> {
        s.iter()
            .map(|(k, v)| (k.to_string(), v.value.clone()))
            .collect()
    }

    #[test]
    fn increments_against_earlier_section() {
        let mut base = new_section(section(&[("a", Op::Set, "1\n2")]));
        update_section(
            &mut base,
            section(&[
                ("a", Op::Add, "3"),
                ("a", Op::Remove, "1"),
                ("x", Op::Add, "z"),
            ]),
        );
        assert_eq!(
            values(&base),
            vec![("a".into(), "2\n3".into()), ("x".into(), "\nz".into())]
        );
    }

    #[test]
    fn increments_in_a_new_section() {
        let s = new_section(section(&[("e", Op::Remove, "1"), ("f", Op::Add, "2")]));
        assert_eq!(
            values(&s),
            vec![("e".into(), String::new()), ("f".into(), "2".into())]
        );
    }
}
