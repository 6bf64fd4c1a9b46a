//! Diagnostics: Roboconf's code names and levels, Grove's words.

use serde::Serialize;

/// How bad a diagnostic is: an error makes the application invalid, a warning does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

macro_rules! codes {
    ($($code:ident => $level:ident,)*) => {
        /// A diagnostic's code, named as Roboconf names it so that people and tools that
        /// know Roboconf read Grove's diagnostics unchanged.
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Code {
            $($code,)*
        }

        impl Code {
            /// Every code, in Roboconf's order.
            pub const ALL: &[Code] = &[$(Code::$code,)*];

            /// The code's name, as written in reports.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$code => stringify!($code),)*
                }
            }

            /// The level Roboconf gives the code.
            pub fn level(self) -> Level {
                match self {
                    $(Code::$code => Level::$level,)*
                }
            }
        }
    };
}

codes! {
    P_IO_ERROR => Error,
    P_ONE_BLOCK_PER_LINE => Error,
    P_PROPERTY_ENDS_WITH_SEMI_COLON => Error,
    P_IMPORT_ENDS_WITH_SEMI_COLON => Error,
    P_O_C_BRACKET_EXTRA_CHARACTERS => Error,
    P_C_C_BRACKET_EXTRA_CHARACTERS => Error,
    P_O_C_BRACKET_MISSING => Error,
    P_C_C_BRACKET_MISSING => Error,
    P_UNRECOGNIZED_BLOCK => Error,
    P_INVALID_PROPERTY => Error,
    P_INVALID_PROPERTY_OR_INSTANCE => Error,
    P_INVALID_FILE_TYPE => Error,
    P_EMPTY_FILE => Warning,
    PM_INVALID_BLOCK_TYPE => Error,
    PM_UNKNOWN_PROPERTY_NAME => Warning,
    PM_EMPTY_PROPERTY_VALUE => Error,
    PM_EMPTY_IMPORT_LOCATION => Error,
    PM_EMPTY_FACET_NAME => Error,
    PM_EMPTY_REFERENCED_NAME => Error,
    PM_EMPTY_COMPONENT_NAME => Error,
    PM_EMPTY_VARIABLE_NAME => Error,
    PM_INVALID_CHILD_NAME => Error,
    PM_INVALID_NAME => Error,
    PM_INVALID_EXPORT_COMPLEX_VALUE => Error,
    PM_INVALID_EXPORTED_VAR_NAME => Error,
    PM_EXTERNAL_IS_KEYWORD_FOR_IMPORTS => Error,
    PM_INVALID_IMPORTED_VAR_NAME => Error,
    PM_INVALID_INSTALLER_NAME => Error,
    PM_INVALID_INSTANCE_ELEMENT => Error,
    PM_INVALID_INSTANCE_COUNT => Error,
    PM_USELESS_INSTANCE_COUNT => Warning,
    PM_PROPERTY_NOT_APPLIABLE => Error,
    PM_DUPLICATE_PROPERTY => Error,
    PM_MISSING_INSTANCE_NAME => Error,
    PM_INVALID_INSTANCE_NAME => Error,
    PM_DOT_IS_NOT_ALLOWED => Error,
    PM_INCOMPLETE_IMPORTED_VAR_NAME => Error,
    PM_MALFORMED_COMMENT => Warning,
    PM_MALFORMED_BLANK => Warning,
    CO_NOT_A_GRAPH => Error,
    CO_NOT_INSTANCES => Error,
    CO_UNREACHABLE_FILE => Error,
    CO_ALREADY_DEFINED_FACET => Error,
    CO_ALREADY_DEFINED_COMPONENT => Error,
    CO_ALREADY_DEFINED_INSTANCE => Error,
    CO_CONFLICTING_INFERRED_INSTANCE => Error,
    CO_INEXISTING_CHILD => Error,
    CO_INEXISTING_COMPONENT => Error,
    CO_INEXISTING_FACET => Error,
    CO_CONFLICTING_NAME => Error,
    CO_GRAPH_COULD_NOT_BE_BUILT => Error,
    RM_MISSING_APPLICATION_NAME => Error,
    RM_INVALID_APPLICATION_NAME => Error,
    RM_MISSING_APPLICATION_DSL_ID => Warning,
    RM_MISSING_APPLICATION_VERSION => Error,
    RM_MISSING_APPLICATION_GEP => Error,
    RM_MISSING_APPLICATION_GRAPHS => Error,
    RM_MISSING_APPLICATION_EXPORT_PREFIX => Error,
    RM_INVALID_APPLICATION_VERSION => Error,
    RM_DOT_IS_NOT_ALLOWED => Error,
    RM_EMPTY_COMPONENT_NAME => Error,
    RM_EMPTY_FACET_NAME => Error,
    RM_INVALID_COMPONENT_NAME => Error,
    RM_INVALID_FACET_NAME => Error,
    RM_EMPTY_COMPONENT_INSTALLER => Error,
    RM_INVALID_COMPONENT_INSTALLER => Error,
    RM_COMPONENT_IMPORTS_EXPORTS => Error,
    RM_ROOT_INSTALLER_MUST_BE_TARGET => Error,
    RM_EMPTY_VARIABLE_NAME => Error,
    RM_INVALID_VARIABLE_NAME => Error,
    RM_INVALID_APPLICATION_EXPORT_PREFIX => Error,
    RM_MAGIC_INSTANCE_VARIABLE => Warning,
    RM_MISSING_VARIABLE_VALUE => Error,
    RM_AMBIGUOUS_OVERRIDING => Warning,
    RM_INVALID_EXTERNAL_EXPORT => Error,
    RM_ALREADY_DEFINED_EXTERNAL_EXPORT => Error,
    RM_INVALID_RANDOM_KIND => Error,
    RM_NO_VALUE_FOR_RANDOM => Error,
    RM_CYCLE_IN_COMPONENTS => Error,
    RM_CYCLE_IN_COMPONENTS_INHERITANCE => Error,
    RM_CYCLE_IN_FACETS_INHERITANCE => Error,
    RM_NO_ROOT_COMPONENT => Error,
    RM_NOT_A_ROOT_COMPONENT => Error,
    RM_UNRESOLVABLE_VARIABLE => Error,
    RM_UNRESOLVABLE_FACET_VARIABLE => Error,
    RM_EMPTY_INSTANCE_NAME => Error,
    RM_INVALID_INSTANCE_NAME => Error,
    RM_EMPTY_INSTANCE_COMPONENT => Error,
    RM_MISSING_INSTANCE_PARENT => Error,
    RM_INVALID_INSTANCE_PARENT => Error,
    RM_UNREACHABLE_COMPONENT => Error,
    RM_ORPHAN_FACET => Warning,
    RM_ORPHAN_FACET_WITH_CHILDREN => Warning,
    PROJ_NO_GRAPH_DIR => Error,
    PROJ_NO_DESC_DIR => Error,
    PROJ_NO_DESC_FILE => Error,
    PROJ_MISSING_GRAPH_EP => Error,
    PROJ_MISSING_INSTANCE_EP => Error,
    PROJ_READ_DESC_FILE => Error,
    PROJ_INVALID_EXTERNAL_EXPORTS => Error,
    PROJ_NO_RESOURCE_DIRECTORY => Warning,
    PROJ_INVALID_COMMAND_EXT => Error,
    PROJ_INVALID_RULE_EXT => Error,
    PROJ_UNREACHABLE_FILE => Warning,
    PROJ_INVALID_FILE_LOCATION => Warning,
    REC_PUPPET_DISLIKES_WILDCARD_IMPORTS => Warning,
    REC_PUPPET_HAS_NO_RBCF_MODULE => Error,
    REC_PUPPET_HAS_TOO_MANY_RBCF_MODULES => Error,
    REC_PUPPET_MISSING_PARAM_IMPORT_DIFF => Error,
    REC_PUPPET_MISSING_PARAM_RUNNING_STATE => Error,
    REC_PUPPET_MISSING_PARAM_FROM_IMPORT => Warning,
    REC_PUPPET_SYNTAX_ERROR => Error,
    REC_SCRIPT_NO_SCRIPTS_DIR => Error,
    REC_TARGET_NO_ID => Error,
    REC_TARGET_NO_HANDLER => Error,
    REC_TARGET_INVALID_FILE_OR_CONTENT => Error,
    REC_TARGET_CONFLICTING_ID => Error,
    REC_TARGET_NO_NAME => Warning,
    REC_TARGET_NO_PROPERTIES => Error,
    CMD_INVALID_TARGET_ID => Error,
    CMD_NO_MATCHING_INSTANCE => Error,
    CMD_NOT_AN_ACCEPTABLE_PARENT => Error,
    CMD_CANNOT_HAVE_ANY_PARENT => Error,
    CMD_NOT_A_SCOPED_INSTANCE => Error,
    CMD_NOT_A_ROOT_INSTANCE => Error,
    CMD_UNRECOGNIZED_INSTRUCTION => Error,
    CMD_INVALID_INSTANCE_STATUS => Error,
    CMD_INSTABLE_INSTANCE_STATUS => Error,
    CMD_EMPTY_VARIABLE_NAME => Error,
    CMD_MISSING_INSTANCE_NAME => Error,
    CMD_INVALID_INSTANCE_NAME => Error,
    CMD_MISSING_COMPONENT_NAME => Error,
    CMD_INEXISTING_COMPONENT => Error,
    CMD_MISSING_PARENT_INSTANCE => Error,
    CMD_CONFLICTING_INSTANCE_NAME => Error,
    CMD_EMAIL_NO_MESSAGE => Error,
    CMD_NO_INSTRUCTION => Warning,
    CMD_UNRESOLVED_VARIABLE => Error,
    CMD_INVALID_SYNTAX => Error,
    CMD_MISSING_TARGET_FILE => Error,
    CMD_MISSING_COMMAND_NAME => Error,
    CMD_INEXISTING_COMMAND => Error,
    CMD_INEXISTING_COMMAND_FILE => Error,
    CMD_LOOPING_COMMAND => Error,
    CMD_NASTY_LOOPING_COMMAND => Error,
    CMD_INVALID_DATE_PATTERN => Error,
    CMD_NO_MIX_FOR_PATTERNS => Error,
    CMD_INVALID_INDEX_PATTERN => Error,
    RULE_IO_ERROR => Error,
    RULE_EMPTY_NAME => Error,
    RULE_INVALID_SYNTAX => Error,
    RULE_EMPTY_WHEN => Error,
    RULE_EMPTY_THEN => Error,
    RULE_UNKNOWN_COMMAND => Error,
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Code {
    type Err = UnknownCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Code::ALL
            .iter()
            .copied()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCode(s.to_owned()))
    }
}

/// A name that is no diagnostic code.
#[derive(Debug, thiserror::Error)]
#[error("no diagnostic code {0:?}")]
pub struct UnknownCode(pub String);

impl Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// One problem found, where it was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub code: Code,
    pub level: Level,
    /// The file, relative to the checked path (to its folder for a single file); `None`
    /// when the problem is the application's, not a file's.
    pub file: Option<String>,
    /// 1-based; `None` when the problem has no line.
    pub line: Option<u32>,
    pub message: String,
    pub detail: Vec<String>,
}

impl Diagnostic {
    pub fn new(
        code: Code,
        file: Option<&str>,
        line: Option<u32>,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            code,
            level: code.level(),
            file: file.map(str::to_owned),
            line,
            message: message.into(),
            detail: Vec::new(),
        }
    }

    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail.push(detail.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.level == Level::Error
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            _ => {}
        }
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{level} {}: {}", self.code, self.message)?;
        for detail in &self.detail {
            write!(f, "\n    {detail}")?;
        }
        Ok(())
    }
}

/// Diagnostics gathered by a stage.
#[derive(Debug, Default, Clone)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn at(&mut self, code: Code, file: &str, line: u32, message: impl Into<String>) {
        self.0
            .push(Diagnostic::new(code, Some(file), Some(line), message));
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }
}
