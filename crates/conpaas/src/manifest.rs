//! Checking a manifest: the JSON read strictly with the byte range of every value (for
//! lines), then the document's shape: ConPaaS 2's (`Application`, `Services`) or the
//! older one (`Description`, `Services`: a warning), each service's `Type` among those
//! Grove knows, `StartupInstances` as counts by role. Every problem is reported; the plan
//! is given only when there is no error, so a deployment never starts on a bad manifest.

use std::collections::BTreeMap;

use jsonc_parser::ast::{Object, Value};
use jsonc_parser::{CollectOptions, CommentCollectionStrategy, ParseOptions};
use serde::Serialize;

/// How bad a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
}

macro_rules! codes {
    ($($name:ident => $level:ident,)*) => {
        /// What a diagnostic says, by name.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
        pub enum Code {
            $($name,)*
        }

        impl Code {
            /// Every code, for the tests that each has a case.
            pub const ALL: &[Code] = &[$(Code::$name,)*];

            pub fn level(self) -> Level {
                match self {
                    $(Code::$name => Level::$level,)*
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(Code::$name => stringify!($name),)*
                }
            }
        }
    };
}

codes! {
    MANIFEST_INVALID_JSON => Error,
    MANIFEST_NOT_AN_OBJECT => Error,
    MANIFEST_MISSING_APPLICATION => Error,
    MANIFEST_MISSING_SERVICES => Error,
    MANIFEST_SERVICES_NOT_A_LIST => Error,
    MANIFEST_SERVICE_NOT_AN_OBJECT => Error,
    MANIFEST_SERVICE_MISSING_TYPE => Error,
    MANIFEST_UNKNOWN_SERVICE_TYPE => Error,
    MANIFEST_INVALID_STARTUP_INSTANCES => Error,
    MANIFEST_INVALID_INSTANCE_COUNT => Error,
    MANIFEST_UNKNOWN_ROLE => Warning,
    MANIFEST_APPLICATION_FROM_DESCRIPTION => Warning,
}

/// One problem: what, how bad, where in the document and on which line (1-based).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    #[serde(serialize_with = "code_name")]
    pub code: Code,
    pub level: Level,
    /// `Services[1].Type`; none for the document as a whole.
    pub at: Option<String>,
    pub line: Option<u32>,
    pub message: String,
}

fn code_name<S: serde::Serializer>(code: &Code, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(code.name())
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        write!(f, "{level} {}", self.code.name())?;
        if let Some(at) = &self.at {
            write!(f, " at {at}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A service as the plan gives it: the manifest's fields under Grove's names, absent
/// ones left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Service {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startup_instances: Option<BTreeMap<String, u32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub startupscript: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dump: Option<String>,
    /// A MySQL service's password: given to the service, never printed with the plan.
    #[serde(skip)]
    pub password: Option<String>,
}

/// What a valid manifest asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub application: String,
    pub services: Vec<Service>,
}

/// The verdict on a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub valid: bool,
    pub kind: &'static str,
    pub diagnostics: Vec<Diagnostic>,
    pub plan: Option<Plan>,
}

/// The service types and the roles of each.
pub const TYPES: &[(&str, &[&str])] = &[
    ("php", &["proxy", "web", "backend"]),
    ("java", &["proxy", "web", "backend"]),
    ("mysql", &["mysql", "glb"]),
    ("xtreemfs", &["osd"]),
    ("generic", &["master", "node"]),
];

/// The largest count a role may start with.
pub const MAX_COUNT: u32 = 1000;

struct Checker<'t> {
    text: &'t str,
    out: Vec<Diagnostic>,
    /// Types the cloud's admin registered beside ConPaaS's, whose roles are the
    /// release's business (any role is taken).
    extra: &'t [String],
}

impl Checker<'_> {
    fn line(&self, offset: usize) -> u32 {
        let before = self.text.get(..offset).unwrap_or(self.text);
        u32::try_from(before.matches('\n').count() + 1).unwrap_or(u32::MAX)
    }

    fn push(&mut self, code: Code, at: Option<String>, offset: Option<usize>, message: String) {
        let line = offset.map(|o| self.line(o));
        self.out.push(Diagnostic {
            code,
            level: code.level(),
            at,
            line,
            message,
        });
    }
}

fn get<'v, 'a>(object: &'v Object<'a>, name: &str) -> Option<&'v Value<'a>> {
    object
        .properties
        .iter()
        .find(|p| p.name.as_str() == name)
        .map(|p| &p.value)
}

fn start(value: &Value<'_>) -> usize {
    match value {
        Value::StringLit(v) => v.range.start,
        Value::NumberLit(v) => v.range.start,
        Value::BooleanLit(v) => v.range.start,
        Value::Object(v) => v.range.start,
        Value::Array(v) => v.range.start,
        Value::NullKeyword(v) => v.range.start,
    }
}

fn text_of(value: Option<&Value<'_>>) -> Option<String> {
    match value {
        Some(Value::StringLit(s)) => Some(s.value.to_string()),
        _ => None,
    }
}

fn what(value: &Value<'_>) -> &'static str {
    match value {
        Value::StringLit(_) => "a string",
        Value::NumberLit(_) => "a number",
        Value::BooleanLit(_) => "a boolean",
        Value::Object(_) => "an object",
        Value::Array(_) => "a list",
        Value::NullKeyword(_) => "null",
    }
}

/// Checks a manifest's text.
pub fn check(text: &str) -> Report {
    check_with(text, &[])
}

/// Checks a manifest's text where the admin registered `extra` service types beside
/// ConPaaS's (any role of theirs is taken).
pub fn check_with(text: &str, extra: &[String]) -> Report {
    let mut c = Checker {
        text,
        out: Vec::new(),
        extra,
    };
    let strict = ParseOptions {
        allow_comments: false,
        allow_loose_object_property_names: false,
        allow_trailing_commas: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    let collect = CollectOptions {
        comments: CommentCollectionStrategy::Off,
        tokens: false,
    };
    let plan = match jsonc_parser::parse_to_ast(text, &collect, &strict) {
        Err(e) => {
            c.push(
                Code::MANIFEST_INVALID_JSON,
                None,
                Some(e.range().start),
                format!("not JSON: {}", e.kind()),
            );
            None
        }
        Ok(parsed) => match parsed.value {
            Some(Value::Object(root)) => document(&mut c, &root),
            Some(other) => {
                let message = format!("a manifest is a JSON object, not {}", what(&other));
                c.push(
                    Code::MANIFEST_NOT_AN_OBJECT,
                    None,
                    Some(start(&other)),
                    message,
                );
                None
            }
            None => {
                c.push(
                    Code::MANIFEST_INVALID_JSON,
                    None,
                    Some(0),
                    "the file holds no JSON value".to_owned(),
                );
                None
            }
        },
    };
    let valid = c.out.iter().all(|d| d.level != Level::Error);
    Report {
        valid,
        kind: "manifest",
        diagnostics: c.out,
        plan: plan.filter(|_| valid),
    }
}

fn document(c: &mut Checker<'_>, root: &Object<'_>) -> Option<Plan> {
    let application = match get(root, "Application") {
        Some(Value::StringLit(s)) if !s.value.trim().is_empty() => Some(s.value.to_string()),
        Some(other) => {
            let message = format!(
                "`Application` names the application: a non-empty string, not {}",
                what(other)
            );
            c.push(
                Code::MANIFEST_MISSING_APPLICATION,
                Some("Application".to_owned()),
                Some(start(other)),
                message,
            );
            None
        }
        None => match get(root, "Description") {
            Some(Value::StringLit(s)) if !s.value.trim().is_empty() => {
                c.push(
                    Code::MANIFEST_APPLICATION_FROM_DESCRIPTION,
                    Some("Description".to_owned()),
                    Some(s.range.start),
                    format!(
                        "no `Application`: the application is named after `Description` ({:?}), as in ConPaaS's older manifests",
                        s.value
                    ),
                );
                Some(s.value.to_string())
            }
            _ => {
                c.push(
                    Code::MANIFEST_MISSING_APPLICATION,
                    None,
                    Some(root.range.start),
                    "the manifest needs `Application`, the application's name".to_owned(),
                );
                None
            }
        },
    };
    let services = match get(root, "Services") {
        None => {
            c.push(
                Code::MANIFEST_MISSING_SERVICES,
                None,
                Some(root.range.start),
                "the manifest needs `Services`, a list of services".to_owned(),
            );
            None
        }
        Some(Value::Array(list)) => Some(
            list.elements
                .iter()
                .enumerate()
                .filter_map(|(i, s)| service(c, i, s))
                .collect::<Vec<_>>(),
        ),
        Some(other) => {
            let message = format!("`Services` is a list of services, not {}", what(other));
            c.push(
                Code::MANIFEST_SERVICES_NOT_A_LIST,
                Some("Services".to_owned()),
                Some(start(other)),
                message,
            );
            None
        }
    };
    Some(Plan {
        application: application?,
        services: services?,
    })
}

fn service(c: &mut Checker<'_>, index: usize, value: &Value<'_>) -> Option<Service> {
    let at = format!("Services[{index}]");
    let Value::Object(object) = value else {
        let message = format!("a service is a JSON object, not {}", what(value));
        c.push(
            Code::MANIFEST_SERVICE_NOT_AN_OBJECT,
            Some(at),
            Some(start(value)),
            message,
        );
        return None;
    };
    let known: Vec<&str> = TYPES
        .iter()
        .map(|(t, _)| *t)
        .chain(c.extra.iter().map(String::as_str))
        .collect();
    let kind: Option<(String, Option<&[&str]>)> = match get(object, "Type") {
        Some(Value::StringLit(s)) if !s.value.is_empty() => {
            match TYPES.iter().find(|(t, _)| *t == s.value) {
                Some((name, roles)) => Some(((*name).to_owned(), Some(*roles))),
                None if c.extra.iter().any(|e| *e == s.value) => Some((s.value.to_string(), None)),
                None => {
                    c.push(
                        Code::MANIFEST_UNKNOWN_SERVICE_TYPE,
                        Some(format!("{at}.Type")),
                        Some(s.range.start),
                        format!("no service type {:?}: {}", s.value, known.join(", ")),
                    );
                    None
                }
            }
        }
        Some(other) => {
            let message = format!(
                "`Type` is a non-empty string ({}), not {}",
                known.join(", "),
                what(other)
            );
            c.push(
                Code::MANIFEST_SERVICE_MISSING_TYPE,
                Some(format!("{at}.Type")),
                Some(start(other)),
                message,
            );
            None
        }
        None => {
            c.push(
                Code::MANIFEST_SERVICE_MISSING_TYPE,
                Some(at.clone()),
                Some(object.range.start),
                format!("a service needs a `Type`: {}", known.join(", ")),
            );
            None
        }
    };
    let roles = kind.as_ref().and_then(|k| k.1);
    let startup = startup_instances(c, &at, get(object, "StartupInstances"), roles);
    let (name, _) = kind?;
    Some(Service {
        kind: name,
        name: text_of(get(object, "ServiceName")),
        startup_instances: startup?,
        archive: text_of(get(object, "Archive")),
        startupscript: text_of(get(object, "StartupScript")),
        dump: text_of(get(object, "Dump")),
        password: text_of(get(object, "Password")),
    })
}

/// `StartupInstances`: counts by role (numbers or numeric strings, as ConPaaS writes
/// them). `None` on an error; `Some(None)` when absent.
fn startup_instances(
    c: &mut Checker<'_>,
    at: &str,
    value: Option<&Value<'_>>,
    roles: Option<&[&str]>,
) -> Option<Option<BTreeMap<String, u32>>> {
    let Some(value) = value else {
        return Some(None);
    };
    let at = format!("{at}.StartupInstances");
    let Value::Object(object) = value else {
        let message = format!(
            "`StartupInstances` maps roles to counts, not {}",
            what(value)
        );
        c.push(
            Code::MANIFEST_INVALID_STARTUP_INSTANCES,
            Some(at),
            Some(start(value)),
            message,
        );
        return None;
    };
    let mut counts = BTreeMap::new();
    let mut ok = true;
    for property in &object.properties {
        let role = property.name.as_str().to_owned();
        let place = format!("{at}.{role}");
        let text = match &property.value {
            Value::NumberLit(n) => Some(n.value.to_owned()),
            Value::StringLit(s) => Some(s.value.trim().to_owned()),
            _ => None,
        };
        match text
            .as_deref()
            .and_then(|t| t.parse::<u32>().ok())
            .filter(|n| *n <= MAX_COUNT)
        {
            Some(count) => {
                counts.insert(role.clone(), count);
            }
            None => {
                ok = false;
                c.push(
                    Code::MANIFEST_INVALID_INSTANCE_COUNT,
                    Some(place.clone()),
                    Some(start(&property.value)),
                    format!(
                        "a count is an integer from 0 to {MAX_COUNT} (a number, or a string of one), not {}",
                        text.map_or_else(|| what(&property.value).to_owned(), |t| format!("{t:?}"))
                    ),
                );
            }
        }
        if let Some(roles) = roles
            && !roles.contains(&role.as_str())
        {
            c.push(
                Code::MANIFEST_UNKNOWN_ROLE,
                Some(place),
                Some(property.range.start),
                format!(
                    "no role {role:?} in this service type: {}",
                    roles.join(", ")
                ),
            );
        }
    }
    ok.then_some(Some(counts))
}
