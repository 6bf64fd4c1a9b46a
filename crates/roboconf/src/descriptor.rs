//! The application descriptor, `descriptor/application.properties`: a Java properties
//! file naming the application, its version and its entry points.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::diagnostic::{Code, Diagnostics};
use crate::vars;

pub const PATH: &str = "descriptor/application.properties";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Descriptor {
    pub name: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub dsl_id: Option<String>,
    pub graph_entry_point: Option<String>,
    pub instance_entry_point: Option<String>,
    pub exports_prefix: Option<String>,
    /// `Component.variable` → alias, as written after `exports =`.
    pub exports: Vec<(String, String)>,
}

/// The value of the first key present (current name, then the legacy one), blank as
/// absent.
fn get(props: &BTreeMap<String, String>, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| props.get(*k))
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// `^(\d+)\.(\d+)(\.\d+)?([.-].+)?$`, without a regex engine.
pub fn is_version(version: &str) -> bool {
    fn digits(s: &str) -> usize {
        s.bytes().take_while(u8::is_ascii_digit).count()
    }
    let major = digits(version);
    if major == 0 {
        return false;
    }
    let Some(rest) = version[major..].strip_prefix('.') else {
        return false;
    };
    let minor = digits(rest);
    if minor == 0 {
        return false;
    }
    let mut rest = &rest[minor..];
    if let Some(after) = rest.strip_prefix('.') {
        let patch = digits(after);
        if patch > 0 {
            rest = &after[patch..];
        }
    }
    rest.is_empty() || (rest.len() > 1 && (rest.starts_with('.') || rest.starts_with('-')))
}

/// A Java properties file's keys and values, or `None` with `code` said at the line that
/// does not read (`what` names the file in the message).
pub(crate) fn properties(
    bytes: &[u8],
    path: &str,
    code: Code,
    what: &str,
    out: &mut Diagnostics,
) -> Option<BTreeMap<String, String>> {
    match java_properties::read(bytes) {
        Ok(map) => Some(map.into_iter().collect()),
        Err(e) => {
            out.push(crate::Diagnostic::new(
                code,
                Some(path),
                e.line_number().and_then(|l| u32::try_from(l).ok()),
                format!("{what} does not read as a properties file: {e}"),
            ));
            None
        }
    }
}

/// Reads and checks the descriptor's text.
pub fn read(text: &str, out: &mut Diagnostics) -> Descriptor {
    let Some(props) = properties(
        text.as_bytes(),
        PATH,
        Code::PROJ_READ_DESC_FILE,
        "the descriptor",
        out,
    ) else {
        return Descriptor::default();
    };
    let problem = |out: &mut Diagnostics, code, message: String| {
        out.push(crate::Diagnostic::new(code, Some(PATH), None, message));
    };
    let d = Descriptor {
        name: get(&props, &["name", "application-name"]),
        version: get(&props, &["version", "application-version"]),
        description: get(&props, &["description", "application-description"]),
        dsl_id: get(&props, &["dsl-id", "application-dsl-id"]),
        graph_entry_point: get(&props, &["graph-entry-point"]),
        instance_entry_point: get(&props, &["instance-entry-point"]),
        exports_prefix: get(&props, &["exports-prefix"]),
        exports: Vec::new(),
    };
    match &d.name {
        None => problem(
            out,
            Code::RM_MISSING_APPLICATION_NAME,
            "the descriptor has no `name`".to_owned(),
        ),
        Some(n) if !vars::is_app_name(n) => problem(
            out,
            Code::RM_INVALID_APPLICATION_NAME,
            format!(
                "{n:?} is not an application name (letters, digits, `_`, `-`, `.`, `(`, `)` and spaces)"
            ),
        ),
        Some(_) => {}
    }
    match &d.version {
        None => problem(
            out,
            Code::RM_MISSING_APPLICATION_VERSION,
            "the descriptor has no `version`".to_owned(),
        ),
        Some(v) if !is_version(v) => problem(
            out,
            Code::RM_INVALID_APPLICATION_VERSION,
            format!("version {v:?} is not MAJOR.MINOR[.PATCH][-or.QUALIFIER]"),
        ),
        Some(_) => {}
    }
    if d.dsl_id.is_none() {
        problem(
            out,
            Code::RM_MISSING_APPLICATION_DSL_ID,
            "the descriptor has no `dsl-id` (roboconf-1.0)".to_owned(),
        );
    }
    if d.graph_entry_point.is_none() {
        problem(
            out,
            Code::RM_MISSING_APPLICATION_GEP,
            "the descriptor has no `graph-entry-point`".to_owned(),
        );
    }
    let mut d = d;
    if let Some(exports) = get(&props, &["exports"]) {
        match &d.exports_prefix {
            None => problem(
                out,
                Code::RM_MISSING_APPLICATION_EXPORT_PREFIX,
                "the descriptor has `exports` but no `exports-prefix` to publish them under"
                    .to_owned(),
            ),
            Some(p) if !vars::is_id(p) => problem(
                out,
                Code::RM_INVALID_APPLICATION_EXPORT_PREFIX,
                format!("exports prefix {p:?} is not a name"),
            ),
            Some(_) => {}
        }
        for item in vars::list(&exports) {
            let parts: Vec<&str> = item.split_whitespace().collect();
            match parts[..] {
                [variable, keyword, alias]
                    if keyword.eq_ignore_ascii_case("as") && variable.contains('.') =>
                {
                    d.exports.push((variable.to_owned(), alias.to_owned()));
                }
                _ => problem(
                    out,
                    Code::PROJ_INVALID_EXTERNAL_EXPORTS,
                    format!("external export {item:?} is not `Component.variable as alias`"),
                ),
            }
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for ok in ["1.0", "1.0.0", "0.10-SNAPSHOT", "2.3.4.beta", "1.0.1-rc1"] {
            assert!(is_version(ok), "{ok}");
        }
        for bad in ["", "1", "snapshot", "1.", "1.0-", "a.b", "1.0."] {
            assert!(!is_version(bad), "{bad}");
        }
    }

    #[test]
    fn legacy_keys_and_continuations() {
        let mut out = Diagnostics::default();
        let d = read(
            "application-name = Lamp\napplication-version: 1.0.0\ndsl-id roboconf-1.0\ngraph-entry-point = main.graph\nexports-prefix = DEP\nexports = VM.config as c, \\\n  App.ip as ip\n",
            &mut out,
        );
        assert!(out.0.is_empty(), "{:?}", out.0);
        assert_eq!(d.name.as_deref(), Some("Lamp"));
        assert_eq!(
            d.exports,
            vec![
                ("VM.config".into(), "c".into()),
                ("App.ip".into(), "ip".into())
            ]
        );
    }
}
