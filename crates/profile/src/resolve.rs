//! Resolution: macros (`<=`), lazy `${section:option}` substitution with cycle detection,
//! SlapOS's `$$` escape, and the parts to install in their order.
//!
//! As in zc.buildout, touching any option of a section initializes the whole section, a
//! referenced section with a `recipe` becomes a part installed before the one referring to
//! it, and the order of definition does not matter.

use std::collections::BTreeMap;
use std::hash::{BuildHasherDefault, Hasher};

use std::rc::Rc;

use crate::error::{Diagnostic, ErrorKind, Severity};
use crate::load::Profile;
use crate::merge::{self, Origin, Section, SectionKey};
use crate::parse::OptKey;
use crate::value::Value;

/// A resolved profile: every value substituted, and the parts in install order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resolved {
    pub sections: BTreeMap<String, BTreeMap<String, Value>>,
    /// Sections with a recipe, dependencies first, as zc.buildout installs them.
    pub parts: Vec<String>,
    /// Every error found; sections that failed are missing from `sections`.
    pub diagnostics: Vec<Diagnostic>,
}

impl Resolved {
    pub fn get(&self, section: &str, option: &str) -> Option<&Value> {
        self.sections.get(section)?.get(option)
    }

    /// Every value as text, section by section.
    pub fn texts(&self) -> BTreeMap<&str, BTreeMap<&str, String>> {
        self.sections
            .iter()
            .map(|(s, options)| {
                let options = options
                    .iter()
                    .map(|(o, v)| (o.as_str(), v.as_text().into_owned()))
                    .collect();
                (s.as_str(), options)
            })
            .collect()
    }

    /// A value as text (structured values render as JSON).
    pub fn text(&self, section: &str, option: &str) -> Option<String> {
        self.get(section, option).map(|v| v.as_text().into_owned())
    }

    /// Renders a buildout-syntax template (what `slapos.recipe.template` does with a file):
    /// `${section:option}` is replaced by the resolved value (`${:option}` reads `section`)
    /// and `$${...}` becomes `${...}`, left for a later pass. An unknown reference is an error
    /// naming it.
    pub fn render(&self, template: &str, section: &str) -> Result<String, String> {
        let mut out = String::with_capacity(template.len());
        for piece in pieces(template) {
            let reference = match piece {
                Piece::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Piece::Reference(reference) => reference,
            };
            let inner = &reference[2..reference.len() - 1];
            let Some((s, o)) = inner.split_once(':') else {
                return Err(format!(
                    "the substitution {reference} doesn't contain a colon"
                ));
            };
            let s = if s.is_empty() { section } else { s };
            match self.get(s, o) {
                Some(value) => out.push_str(&value.as_text()),
                None if o == "_buildout_section_name_" => out.push_str(section),
                None => return Err(format!("referenced option does not exist: {s}:{o}")),
            }
        }
        Ok(out)
    }
}

/// Runs when a section with a `recipe` is initialized, after its options are substituted
/// and before any other section reads them: where a recipe computes options of its own
/// (as zc.buildout runs a recipe's constructor), which other sections may then refer to.
pub trait Initializer {
    /// Whether sections with this recipe need [`Initializer::initialize`] (building the
    /// options for a recipe that computes nothing is wasted work).
    fn handles(&self, recipe: &str) -> bool {
        let _ = recipe;
        true
    }

    /// Why a section with this recipe, which [`Initializer::handles`] leaves alone, lacks
    /// an option another section refers to (the recipe would compute it when it runs);
    /// `None`: no more to say than that the option does not exist.
    fn unrun(&self, recipe: &str) -> Option<String> {
        let _ = recipe;
        None
    }

    /// Whether sections with this recipe may initialize others first
    /// ([`Initializer::early`]): they are resolved before the other sections no part
    /// reaches, so that they find theirs untouched.
    fn initializes_early(&self, recipe: &str) -> bool {
        let _ = recipe;
        false
    }

    /// Sections this section's recipe initializes before itself, each with options set
    /// before its own recipe runs, and options taken from it once it is initialized
    /// (SlapOS's `publish-early`). `options` are the section's substituted values.
    fn early(
        &mut self,
        section: &str,
        recipe: &str,
        options: &BTreeMap<String, Value>,
    ) -> Result<Vec<Early>, String> {
        let _ = (section, recipe, options);
        Ok(Vec::new())
    }

    /// `options` holds the section's substituted values; what the recipe adds or changes
    /// there is what other sections see. An error fails the section.
    fn initialize(
        &mut self,
        section: &str,
        recipe: &str,
        options: &mut BTreeMap<String, Value>,
    ) -> Result<(), String>;
}

/// A section another section's recipe initializes first ([`Initializer::early`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Early {
    pub section: String,
    /// Options set in the section before its recipe runs, in place of what it says.
    pub preset: BTreeMap<String, Value>,
    /// `(option of that section, option of the asking one)`: moved from the section to
    /// the one asking once it is initialized, so that only the asking one has it.
    pub taken: Vec<(String, String)>,
}

/// Resolves without running any recipe.
struct NoRecipes;

impl Initializer for NoRecipes {
    fn handles(&self, _: &str) -> bool {
        false
    }

    fn initialize(
        &mut self,
        _: &str,
        _: &str,
        _: &mut BTreeMap<String, Value>,
    ) -> Result<(), String> {
        Ok(())
    }
}

/// The maps of the resolver are keyed by section and option names of the profile being
/// resolved; a multiply-rotate hash (as rustc's) is several times cheaper than SipHash on
/// these short keys. A crafted profile could only slow down its own resolution.
#[derive(Default)]
struct NameHasher(u64);

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(word))
                .wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.0 = (self.0.rotate_left(5) ^ u64::from(byte)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type HashMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<NameHasher>>;

/// A raw value after macro expansion, with the place it was written.
struct RawValue {
    value: Rc<str>,
    origin: Option<Origin>,
}

/// A computed option: being substituted (meeting it again is a circular reference), or done.
enum Slot {
    InProgress,
    Done(Rc<Value>),
}

struct SectionState {
    raw: BTreeMap<String, RawValue>,
    values: HashMap<String, Slot>,
    failed: bool,
}

struct Resolver<'p, 'i> {
    profile: &'p Profile,
    initializer: &'i mut dyn Initializer,
    states: HashMap<String, SectionState>,
    parts: Vec<String>,
    /// Sections with their macros expanded.
    expanded: HashMap<String, Section>,
    /// Options set before a section is initialized ([`Early::preset`]).
    presets: HashMap<String, BTreeMap<String, Value>>,
}

const SIMPLE: fn(char) -> bool = |c| c.is_ascii_alphanumeric() || "-._ ".contains(c);

impl Profile {
    /// Resolves every section of the profile, running no recipe.
    pub fn resolve(&self) -> Resolved {
        self.resolve_with(&mut NoRecipes)
    }

    /// Resolves every section, letting `initializer` compute the options of sections with
    /// a recipe as they are initialized.
    pub fn resolve_with(&self, initializer: &mut dyn Initializer) -> Resolved {
        let mut resolver = Resolver {
            profile: self,
            initializer,
            states: HashMap::default(),
            parts: Vec::new(),
            expanded: HashMap::default(),
            presets: HashMap::default(),
        };
        let mut diagnostics = self.diagnostics.clone();
        let mut record = |mut d: Diagnostic, phase: Option<&str>| {
            if let Some(phase) = phase {
                d.chain.insert(0, phase.to_owned());
            }
            if !diagnostics.contains(&d) {
                diagnostics.push(d);
            }
        };

        match resolver.section("buildout") {
            Ok(()) => {
                if let Err(d) = resolver.finish_buildout_section() {
                    record(d, Some("initializing"));
                }
            }
            Err(d) => record(d, Some("initializing")),
        }

        let parts = resolver
            .states
            .get("buildout")
            .and_then(|s| resolver.final_value(s, "parts"));
        let parts = parts.map(|p| p.as_text().into_owned()).unwrap_or_default();
        for part in parts.split_whitespace() {
            if resolver.states.get(part).is_some_and(|s| s.failed) {
                continue;
            }
            match resolver.section(part) {
                Ok(()) => {
                    if resolver
                        .states
                        .get(part)
                        .is_some_and(|s| !s.raw.contains_key("recipe"))
                    {
                        let mut d = resolver.error(
                            ErrorKind::RequiredOption(part.to_owned(), "recipe".to_owned()),
                            None,
                        );
                        d.section = Some(part.to_owned());
                        record(d, Some("installing"));
                    }
                }
                Err(d) => record(d, Some("installing")),
            }
        }
        let install_order = resolver.parts.clone();

        // Sections no `${}` above reached. zc.buildout looks at them only when a recipe
        // asks for them (a template's `context = section ...`), so nothing in them fails
        // the profile: they are resolved (their recipes computing their options, for the
        // recipes that read them), and what is wrong there is a warning (a macro template
        // whose references only make sense in its users, `${:port}` in `[server]`; a recipe
        // Grove lacks in a section nothing uses).
        let (first, rest): (Vec<&String>, Vec<&String>) = self.sections.keys().partition(|name| {
            self.sections[*name]
                .get(&OptKey::set("recipe"))
                .is_some_and(|r| resolver.initializer.initializes_early(r.value.trim()))
        });
        for name in first.into_iter().chain(rest) {
            if resolver.states.contains_key(name) {
                continue;
            }
            if let Err(mut d) = resolver.section(name) {
                d.severity = Severity::Warning;
                record(d, Some("listing sections no part uses"));
            }
        }

        let mut sections = BTreeMap::new();
        for (name, state) in resolver.states {
            if state.failed {
                continue;
            }
            let mut values: BTreeMap<String, Value> = state
                .raw
                .into_iter()
                .map(|(k, raw)| (k, Value::Text(raw.value.to_string())))
                .collect();
            for (k, slot) in state.values {
                if let Slot::Done(v) = slot {
                    values.insert(k, Rc::unwrap_or_clone(v));
                }
            }
            sections.insert(name, values);
        }
        Resolved {
            sections,
            parts: install_order,
            diagnostics,
        }
    }
}

/// `os.path.join` of two strings: an absolute second part wins.
fn path_join(dir: &str, name: &str) -> String {
    if name.starts_with('/') || dir.is_empty() {
        name.to_owned()
    } else if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

impl Resolver<'_, '_> {
    fn final_value(&self, state: &SectionState, option: &str) -> Option<Value> {
        match state.values.get(option) {
            Some(Slot::Done(v)) => Some(Value::clone(v)),
            _ => state
                .raw
                .get(option)
                .map(|k| Value::Text(k.value.to_string())),
        }
    }

    fn text(&self, state: &SectionState, option: &str) -> Option<String> {
        self.final_value(state, option)
            .map(|v| v.as_text().into_owned())
    }

    fn error(&self, kind: ErrorKind, origin: Option<Origin>) -> Diagnostic {
        let mut d = Diagnostic::new(kind);
        if let Some(Origin::File { file, line }) = origin {
            d.file = self
                .profile
                .files
                .get(file as usize)
                .map(|f| f.display.clone());
            d.line = Some(line);
        } else if origin == Some(Origin::CommandLine) {
            d.file = Some("<command line>".to_owned());
        }
        d
    }

    /// Makes sure a section is initialized (or being initialized).
    fn section(&mut self, name: &str) -> Result<(), Diagnostic> {
        if let Some(state) = self.states.get(name) {
            if state.failed {
                return Err(self.error(ErrorKind::SectionFailed(name.to_owned()), None));
            }
            return Ok(());
        }
        let Some(raw) = self.profile.sections.get(name) else {
            return Err(self.error(ErrorKind::MissingSection(name.to_owned()), None));
        };
        // The chain of lookups in an error is built as it travels up, so that the common
        // path does no bookkeeping.
        let result = self.initialize(name, raw).map_err(|mut d| {
            d.chain.insert(0, format!("initializing section {name}"));
            d
        });
        if result.is_err()
            && let Some(state) = self.states.get_mut(name)
        {
            state.failed = true;
        }
        result
    }

    fn initialize(&mut self, name: &str, raw: &Section) -> Result<(), Diagnostic> {
        let expanded = if raw.contains_key(&OptKey::set("<")) && name != "buildout" {
            match self.expand_macros(name, &mut Vec::new()) {
                Ok(expanded) => Some(expanded),
                Err(e) => {
                    self.states.insert(
                        name.to_owned(),
                        SectionState {
                            raw: BTreeMap::new(),
                            values: HashMap::default(),
                            failed: true,
                        },
                    );
                    return Err(e);
                }
            }
        } else {
            None
        };
        let origin = |v: &SectionKey| v.file_origin().or_else(|| Some(v.origin()));
        let mut plain: BTreeMap<String, RawValue> = match expanded {
            Some(expanded) => expanded
                .into_iter()
                .map(|(k, v)| {
                    let origin = origin(&v);
                    (
                        k.into_display_name(),
                        RawValue {
                            value: v.value.into(),
                            origin,
                        },
                    )
                })
                .collect(),
            None => raw
                .iter()
                .map(|(k, v)| {
                    let value = RawValue {
                        value: v.value.as_str().into(),
                        origin: origin(v),
                    };
                    (k.display_name(), value)
                })
                .collect(),
        };
        if name == "buildout" {
            self.absolutize_raw_directories(&mut plain);
        }
        let preset = self.presets.remove(name).unwrap_or_default();
        for option in preset.keys() {
            plain.remove(option);
        }
        let to_substitute: Vec<String> = plain
            .iter()
            .filter(|(_, v)| needs_substitution(&v.value))
            .map(|(k, _)| k.clone())
            .collect();
        self.states.insert(
            name.to_owned(),
            SectionState {
                raw: plain,
                values: preset
                    .into_iter()
                    .map(|(k, v)| (k, Slot::Done(Rc::new(v))))
                    .collect(),
                failed: false,
            },
        );

        for option in to_substitute {
            self.get(name, &option)?;
        }
        if name == "buildout" {
            return Ok(());
        }
        let dependencies = self
            .get(name, "<part-dependencies>")?
            .map(|v| v.as_text().into_owned())
            .unwrap_or_default();
        for dependency in dependencies.split_whitespace() {
            self.section(dependency)?;
        }
        let recipe = self
            .get(name, "recipe")?
            .map(|v| v.as_text().into_owned())
            .filter(|r| !r.is_empty());
        if let Some(recipe) = recipe {
            self.run_initializer(name, &recipe)?;
            self.parts.push(name.to_owned());
        }
        Ok(())
    }

    /// Lets the recipe of a section compute its options; they become the section's values.
    /// The recipe of `section` and why its options are not all there, when it has one
    /// the initializer leaves alone and can say why.
    fn unrun_recipe(&mut self, section: &str) -> Result<Option<(String, String)>, Diagnostic> {
        let Some(recipe) = self.get(section, "recipe")? else {
            return Ok(None);
        };
        let recipe = recipe.as_text().trim().to_owned();
        if self.initializer.handles(&recipe) {
            return Ok(None);
        }
        Ok(self.initializer.unrun(&recipe).map(|why| (recipe, why)))
    }

    fn run_initializer(&mut self, name: &str, recipe: &str) -> Result<(), Diagnostic> {
        let Some(state) = self.states.get(name) else {
            return Ok(());
        };
        if !self.initializer.handles(recipe) {
            return Ok(());
        }
        let mut options = self.options(state);
        let origin = state.raw.get("recipe").and_then(|r| r.origin);
        let failed = |resolver: &Self, message: String| {
            let kind = ErrorKind::Recipe {
                recipe: recipe.to_owned(),
                message,
            };
            let mut d = resolver.error(kind, origin);
            d.section = Some(name.to_owned());
            d
        };
        let early = self
            .initializer
            .early(name, recipe, &options)
            .map_err(|message| failed(self, message))?;
        if !early.is_empty() {
            for early in early {
                if self.states.contains_key(&early.section) {
                    let message = format!(
                        "section {} was already initialized: nothing may refer to it before [{name}]",
                        early.section
                    );
                    return Err(failed(self, message));
                }
                self.initialize_early(name, early)?;
            }
            if let Some(state) = self.states.get(name) {
                options = self.options(state);
            }
        }
        if let Err(message) = self.initializer.initialize(name, recipe, &mut options) {
            return Err(failed(self, message));
        }
        if let Some(state) = self.states.get_mut(name) {
            state.values = options
                .into_iter()
                .map(|(k, v)| (k, Slot::Done(Rc::new(v))))
                .collect();
        }
        Ok(())
    }

    /// A section's options as they stand, for its recipe.
    fn options(&self, state: &SectionState) -> BTreeMap<String, Value> {
        state
            .raw
            .keys()
            .chain(state.values.keys())
            .filter_map(|k| Some((k.clone(), self.final_value(state, k)?)))
            .collect()
    }

    /// Initializes `early.section` for `asking`, with its presets, and moves the options
    /// `asking` takes from it.
    fn initialize_early(&mut self, asking: &str, early: Early) -> Result<(), Diagnostic> {
        self.presets.insert(early.section.clone(), early.preset);
        self.section(&early.section)?;
        for (option, key) in early.taken {
            let value = self.get(&early.section, &option)?;
            if let Some(state) = self.states.get_mut(&early.section) {
                state.raw.remove(&option);
                state.values.remove(&option);
            }
            if let (Some(value), Some(state)) = (value, self.states.get_mut(asking)) {
                state.raw.remove(&key);
                state.values.insert(key, Slot::Done(value));
            }
        }
        Ok(())
    }

    /// `<= a b`: the raw options of `a`, then `b`, then the section's own on top.
    fn expand_macros(
        &mut self,
        name: &str,
        doing: &mut Vec<String>,
    ) -> Result<Section, Diagnostic> {
        if let Some(done) = self.expanded.get(name) {
            return Ok(done.clone());
        }
        let profile = self.profile;
        let Some(data) = profile.sections.get(name) else {
            return Err(self.error(ErrorKind::NoMacroSection(name.to_owned()), None));
        };
        let macro_key = OptKey::set("<");
        let Some(sources) = data.get(&macro_key).filter(|_| name != "buildout") else {
            return Ok(data.clone());
        };
        let origin = Some(sources.origin());
        if doing.iter().any(|d| d == name) {
            return Err(self.error(ErrorKind::MacroLoop(name.to_owned()), origin));
        }
        doing.push(name.to_owned());
        let mut result = Section::new();
        for source in sources
            .value
            .split('\n')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            if !profile.sections.contains_key(source) {
                return Err(self.error(ErrorKind::NoMacroSection(source.to_owned()), origin));
            }
            let expanded =
                stacker::maybe_grow(64 * 1024, 1024 * 1024, || self.expand_macros(source, doing))?;
            result.extend(expanded);
        }
        merge::update_section(&mut result, data.clone());
        result.remove(&macro_key);
        doing.pop();
        // A section's expansion depends only on the raw profile: expand each macro source
        // once (a section that is not a source is expanded once anyway, when initialized).
        if !doing.is_empty() {
            self.expanded.insert(name.to_owned(), result.clone());
        }
        Ok(result)
    }

    /// Before substitution, zc.buildout makes the standard directories absolute.
    fn absolutize_raw_directories(&self, raw: &mut BTreeMap<String, RawValue>) {
        let Some(directory) = raw.get("directory").map(|d| d.value.to_string()) else {
            return;
        };
        for name in ["bin", "parts", "eggs", "develop-eggs"] {
            if let Some(key) = raw.get_mut(&format!("{name}-directory"))
                && !key.value.contains("${")
            {
                key.value = path_join(&directory, &key.value).into();
            }
        }
    }

    /// After the `[buildout]` section is substituted: absolute directories, the installed
    /// database path and the versioned eggs directory.
    fn finish_buildout_section(&mut self) -> Result<(), Diagnostic> {
        let Some(state) = self.states.get("buildout") else {
            return Ok(());
        };
        let Some(directory) = self.text(state, "directory") else {
            let mut d = self.error(
                ErrorKind::RequiredOption("buildout".to_owned(), "directory".to_owned()),
                None,
            );
            d.section = Some("buildout".to_owned());
            return Err(d);
        };
        let mut updates = Vec::new();
        for name in ["bin", "parts", "eggs", "develop-eggs"] {
            let key = format!("{name}-directory");
            if let Some(v) = self.text(state, &key) {
                updates.push((key, path_join(&directory, &v)));
            }
        }
        if let Some(installed) = self.text(state, "installed").filter(|v| !v.is_empty()) {
            updates.push(("installed".to_owned(), path_join(&directory, &installed)));
        }
        let version = self
            .text(state, "eggs-directory-version")
            .unwrap_or_default();
        if let Some(state) = self.states.get_mut("buildout") {
            for (k, v) in updates {
                let v = if k == "eggs-directory" && !version.is_empty() {
                    path_join(&v, &version)
                } else {
                    v
                };
                state.values.insert(k, Slot::Done(Rc::new(Value::Text(v))));
            }
        }
        Ok(())
    }

    /// The substituted value of an option of an initialized section.
    fn get(&mut self, section: &str, option: &str) -> Result<Option<Rc<Value>>, Diagnostic> {
        let Some(state) = self.states.get(section) else {
            return Err(self.error(ErrorKind::MissingSection(section.to_owned()), None));
        };
        let Some(raw) = state.raw.get(option) else {
            return match state.values.get(option) {
                Some(Slot::Done(v)) => Ok(Some(Rc::clone(v))),
                _ => Ok(None),
            };
        };
        let origin = raw.origin;
        match state.values.get(option) {
            Some(Slot::Done(v)) => return Ok(Some(Rc::clone(v))),
            Some(Slot::InProgress) => {
                let me = format!("{section}:{option}");
                let mut d = self.error(ErrorKind::CircularReference(vec![me]), origin);
                d.section = Some(section.to_owned());
                d.option = Some(option.to_owned());
                return Err(d);
            }
            None => {}
        }
        if !needs_substitution(&raw.value) {
            return Ok(Some(Rc::new(Value::Text(raw.value.to_string()))));
        }
        let raw_value = Rc::clone(&raw.value);
        if let Some(state) = self.states.get_mut(section) {
            state.values.insert(option.to_owned(), Slot::InProgress);
        }
        let result = stacker::maybe_grow(64 * 1024, 1024 * 1024, || {
            self.substitute(section, option, &raw_value, origin)
        });
        let Some(state) = self.states.get_mut(section) else {
            return result.map(|v| Some(Rc::new(v)));
        };
        match result {
            Ok(value) => {
                let value = Rc::new(value);
                if let Some(slot) = state.values.get_mut(option) {
                    *slot = Slot::Done(Rc::clone(&value));
                }
                Ok(Some(value))
            }
            Err(mut d) => {
                state.values.remove(option);
                let me = format!("{section}:{option}");
                // A circular reference lists the lookups from the first one of the
                // repeated option down to its repetition.
                if let ErrorKind::CircularReference(cycle) = &mut d.kind
                    && !(cycle.len() > 1 && cycle.first() == cycle.last())
                {
                    cycle.insert(0, me.clone());
                }
                d.chain.insert(0, format!("getting option {me}"));
                Err(d)
            }
        }
    }

    fn substitute(
        &mut self,
        section: &str,
        option: &str,
        template: &str,
        origin: Option<Origin>,
    ) -> Result<Value, Diagnostic> {
        let locate = |mut d: Diagnostic| {
            d.section.get_or_insert_with(|| section.to_owned());
            d.option.get_or_insert_with(|| option.to_owned());
            d
        };
        let mut out = String::with_capacity(template.len());
        for piece in pieces(template) {
            let reference = match piece {
                Piece::Text(text) => {
                    out.push_str(text);
                    continue;
                }
                Piece::Reference(reference) => reference,
            };
            let inner = &reference[2..reference.len() - 1];
            let fields: Vec<&str> = inner.split(':').collect();
            let (ref_section, ref_option) = match fields[..] {
                [s, o] if s.chars().all(SIMPLE) && !o.is_empty() && o.chars().all(SIMPLE) => (s, o),
                [_] => {
                    return Err(locate(
                        self.error(ErrorKind::NoColon(reference.to_owned()), origin),
                    ));
                }
                [s, _] if s.is_empty() || !s.chars().all(SIMPLE) => {
                    return Err(locate(
                        self.error(ErrorKind::BadSectionName(reference.to_owned()), origin),
                    ));
                }
                [_, _] => {
                    return Err(locate(
                        self.error(ErrorKind::BadOptionName(reference.to_owned()), origin),
                    ));
                }
                _ => {
                    return Err(locate(
                        self.error(ErrorKind::TooManyColons(reference.to_owned()), origin),
                    ));
                }
            };
            let ref_section = if ref_section.is_empty() {
                section
            } else {
                ref_section
            };
            if let Err(e) = self.section(ref_section) {
                return Err(match e.kind {
                    ErrorKind::MissingSection(_) => locate(self.error(e.kind, origin)),
                    _ => e,
                });
            }
            match self.get(ref_section, ref_option)? {
                // A whole value that is one reference to a structure keeps it.
                Some(v) if template == reference && matches!(*v, Value::Structured(_)) => {
                    return Ok(Rc::unwrap_or_clone(v));
                }
                Some(v) => out.push_str(&v.as_text()),
                // zc.buildout falls back to the name of the section doing the lookup.
                None if ref_option == "_buildout_section_name_" => out.push_str(section),
                None => {
                    let kind = match self.unrun_recipe(ref_section)? {
                        Some((recipe, why)) => ErrorKind::ComputedByRecipe {
                            section: ref_section.to_owned(),
                            option: ref_option.to_owned(),
                            recipe,
                            why,
                        },
                        None => {
                            ErrorKind::MissingOption(ref_section.to_owned(), ref_option.to_owned())
                        }
                    };
                    return Err(locate(self.error(kind, origin)));
                }
            }
        }
        Ok(Value::Text(out))
    }
}

/// A template cut into literal text and `${...}` references.
enum Piece<'a> {
    Text(&'a str),
    Reference(&'a str),
}

/// SlapOS: `$$` escapes a `$`, so `$${a:b}` becomes the text `${a:b}`; an unterminated
/// `${` is text.
fn pieces(template: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    for (i, piece) in split_escapes(template).enumerate() {
        if i > 0 {
            out.push(Piece::Text("$"));
        }
        let mut rest = piece;
        while let Some(start) = find_reference(rest) {
            let Some(len) = rest[start..].find('}') else {
                break;
            };
            out.push(Piece::Text(&rest[..start]));
            out.push(Piece::Reference(&rest[start..start + len + 1]));
            rest = &rest[start + len + 1..];
        }
        out.push(Piece::Text(rest));
    }
    out
}

/// The pieces between `$$` escapes (the whole text when there is none).
fn split_escapes(text: &str) -> std::str::Split<'_, &'static str> {
    text.split("$$")
}

/// Where the next `${` starts.
fn find_reference(text: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut from = 0;
    while let Some(i) = bytes[from..].iter().position(|b| *b == b'$') {
        let at = from + i;
        if bytes.get(at + 1) == Some(&b'{') {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

fn needs_substitution(value: &str) -> bool {
    value.contains("${") || value.contains("$$")
}
