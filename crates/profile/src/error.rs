//! Diagnostics: what went wrong, and where (file, line, section, option, chain of lookups).

use std::fmt;

/// What went wrong. Messages are lowercase fragments without a trailing period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("{0}")]
    Parse(String),
    #[error("cannot read {location}: {message}")]
    Load { location: String, message: String },
    #[error("file not found: {0}")]
    NotFound(String),
    #[error("recursive file include: {}", .0.join(" -> "))]
    RecursiveInclude(Vec<String>),
    #[error("no-longer supported \"extended-by\" option")]
    ExtendedBy,
    #[error("bad assignment {0:?}: expected section:option=value")]
    BadAssignment(String),
    #[error("circular reference in substitutions: {}", .0.join(" -> "))]
    CircularReference(Vec<String>),
    #[error("the substitution {0} doesn't contain a colon")]
    NoColon(String),
    #[error("the substitution {0} has too many colons")]
    TooManyColons(String),
    #[error("the section name in substitution {0} has invalid characters")]
    BadSectionName(String),
    #[error("the option name in substitution {0} has invalid characters")]
    BadOptionName(String),
    #[error("the referenced section '{0}' was not defined")]
    MissingSection(String),
    #[error("referenced option does not exist: {0}:{1}")]
    MissingOption(String, String),
    #[error(
        "referenced option does not exist: {section}:{option} ({why}: recipe {recipe} of [{section}])"
    )]
    ComputedByRecipe {
        section: String,
        option: String,
        recipe: String,
        why: String,
    },
    #[error("missing option: {0}:{1}")]
    RequiredOption(String, String),
    #[error("no section named '{0}' to extend")]
    NoMacroSection(String),
    #[error("infinite extending loop '{0}'")]
    MacroLoop(String),
    #[error("the buildout section cannot use a macro")]
    MacroInBuildout,
    #[error("recipe {recipe}: {message}")]
    Recipe { recipe: String, message: String },
    #[error("section '{0}' cannot be resolved because of an earlier error")]
    SectionFailed(String),
}

/// How bad a diagnostic is: errors fail `resolve` and `check`, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One error, with as much of its place as is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub kind: ErrorKind,
    /// The file (as displayed) and line the error points at.
    pub file: Option<String>,
    pub line: Option<u32>,
    pub section: Option<String>,
    pub option: Option<String>,
    /// The lookups that led here, outermost first (`getting option a:x`, ...).
    pub chain: Vec<String>,
}

impl Diagnostic {
    pub fn new(kind: ErrorKind) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            kind,
            file: None,
            line: None,
            section: None,
            option: None,
            chain: Vec::new(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The message without the position prefix.
    pub fn message(&self) -> String {
        let mut out = String::new();
        if self.severity == Severity::Warning {
            out.push_str("warning: ");
        }
        match (&self.section, &self.option) {
            (Some(s), Some(o)) => out.push_str(&format!("[{s}] {o}: ")),
            (Some(s), None) => out.push_str(&format!("[{s}]: ")),
            _ => {}
        }
        out.push_str(&self.kind.to_string());
        if !self.chain.is_empty() {
            out.push_str(" (while ");
            out.push_str(&self.chain.join(", "));
            out.push(')');
        }
        out
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            (None, _) => {}
        }
        f.write_str(&self.message())
    }
}

impl std::error::Error for Diagnostic {}
