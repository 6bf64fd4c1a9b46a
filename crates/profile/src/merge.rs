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
            if self.same_assignment(&other) {
                return;
            }
            // Only the last assignment and the increments after it are shown
            // (`annotate`), and errors point at the last line of a file that changed the
            // value (`file_origin`): what came before the override is dropped but for
            // that line, so that re-applied bases do not grow histories without end.
            let last_file = self
                .later
                .iter()
                .rev()
                .find(|h| matches!(h.origin, Origin::File { .. }))
                .copied();
            self.later.clear();
            self.later.extend(last_file);
            self.later.push(HistoryItem {
                step: Step::Override,
                origin,
            });
            self.value = other.value;
        }
    }

    /// Whether overriding this value with `other` would change nothing anyone reads: the
    /// same value assigned on the same line (a base applied again on a diamond).
    fn same_assignment(&self, other: &SectionKey) -> bool {
        let assigned = |k: &SectionKey| !matches!(k.last().step, Step::Add | Step::Remove);
        self.value == other.value
            && assigned(self)
            && assigned(other)
            && self.origin() == other.origin()
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
        // The value the increment applies to is taken, not copied: what it becomes
        // replaces it (a value a diamond adds to many times grows long).
        let mut base = s2
            .remove(&plain)
            .or_else(|| s1.remove(&plain))
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
        } else if macro_user(&section) {
            // A macro user keeps its increments until the macro is expanded, when the
            // values they apply to are known.
            d1.insert(name, section);
        } else {
            d1.insert(name, new_section(section));
        }
    }
}

/// Applies every section of `d2` on top of `d1` as [`update`] does, copying only what
/// it needs of `d2` (a file applied again wherever it is reached).
pub(crate) fn update_from_ref(d1: &mut Sections, d2: &Sections) {
    for (name, section) in d2 {
        match d1.get_mut(name) {
            Some(existing) if section.keys().all(|k| k.op == Op::Set) => {
                update_section_from(existing, section);
            }
            Some(existing) => update_section(existing, section.clone()),
            None if macro_user(section) => {
                d1.insert(name.clone(), section.clone());
            }
            None => {
                d1.insert(name.clone(), new_section(section.clone()));
            }
        }
    }
}

/// Sections merged once and shared: a file's bases and the file, applied again wherever
/// the file is reached (sections are shared between the deltas that hold them unchanged).
pub(crate) type Delta = BTreeMap<std::rc::Rc<str>, std::rc::Rc<Section>>;

/// Applies one section on top of `d1[name]` as [`update`] does.
fn update_one(d1: &mut Sections, name: &str, section: Section) {
    let mut one = Sections::new();
    one.insert(name.to_owned(), section);
    update(d1, one);
}

/// The key of a section's macros (`<=`), made once: looked up in every section applied.
fn macro_key() -> &'static OptKey {
    static KEY: std::sync::OnceLock<OptKey> = std::sync::OnceLock::new();
    KEY.get_or_init(|| OptKey::set("<"))
}

/// Whether `section` uses macros.
pub(crate) fn macro_user(section: &Section) -> bool {
    section.contains_key(macro_key())
}

/// Whether applying `section` is only assigning values: no increment, no macro.
fn plain(section: &Section) -> bool {
    !macro_user(section) && section.keys().all(|k| k.op == Op::Set)
}

/// [`plain`] for a section of a delta, which has increments only if it uses macros (a
/// delta's sections are merged from nothing, increments applied but in macro users).
fn plain_in_delta(section: &Section) -> bool {
    debug_assert!(macro_user(section) || plain(section));
    !macro_user(section)
}

/// Applies a plain section (see [`plain`]) on top of `s1` as [`update_section`] would,
/// copying only the values that change.
fn update_section_from(s1: &mut Section, s2: &Section) {
    for (key, value) in s2 {
        match s1.get_mut(key) {
            Some(existing) if existing.same_assignment(value) => {}
            Some(existing) => existing.override_with(value.clone()),
            None => {
                s1.insert(key.clone(), value.clone());
            }
        }
    }
}

/// Applies one section of a delta on top of `d1` as [`update`] would; returns whether applying it again right
/// after would change nothing (true of a plain section, not of a macro user's increments).
pub(crate) fn update_from_one(d1: &mut Sections, name: &str, section: &Section) -> bool {
    let plain = plain_in_delta(section);
    match d1.get_mut(name) {
        Some(existing) if plain => update_section_from(existing, section),
        _ => update_one(d1, name, section.clone()),
    }
    plain
}

/// Applies `section` on top of the delta's section `name`, sharing what does not change
/// and changing in place what no other delta holds.
pub(crate) fn update_delta(
    delta: &mut Delta,
    name: &std::rc::Rc<str>,
    section: std::rc::Rc<Section>,
    in_delta: bool,
) {
    let plain = if in_delta {
        plain_in_delta(&section)
    } else {
        plain(&section)
    };
    match delta.get_mut(name) {
        None if plain => {
            delta.insert(std::rc::Rc::clone(name), section);
        }
        Some(existing) if std::rc::Rc::ptr_eq(existing, &section) => {}
        Some(existing) if plain => {
            if **existing != *section {
                update_section_from(std::rc::Rc::make_mut(existing), &section);
            }
        }
        Some(existing) => {
            let section = std::rc::Rc::unwrap_or_clone(section);
            update_section(std::rc::Rc::make_mut(existing), section);
        }
        None => {
            let mut one = Sections::new();
            update_one(&mut one, name, std::rc::Rc::unwrap_or_clone(section));
            if let Some(merged) = one.remove(&**name) {
                delta.insert(std::rc::Rc::clone(name), std::rc::Rc::new(merged));
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
