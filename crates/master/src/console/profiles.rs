//! The profile editor: a profile typed in the browser is loaded and resolved by the
//! engine as the user types, and the page shows every diagnostic (line, section, option)
//! and the resolved values, as slaprunner's editor did for SlapOS developers.
//!
//! The engine sees only the text sent: `extends` of another file or a URL is a
//! diagnostic, never a read on the master's disk or network.

use std::collections::{BTreeMap, HashMap};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use grove_profile::{LoadOptions, Severity};
use grove_store::Store;
use minijinja::context;
use serde::{Deserialize, Serialize};

use super::{Shared, Viewer};

/// The largest profile the editor resolves.
const MAX_TEXT: usize = 256 * 1024;

/// Where the edited text is, for the engine and its diagnostics.
const LOCATION: &str = "/editor/profile.cfg";

const EXAMPLE: &str = "[buildout]\nparts = hello\n\n[hello]\nrecipe = slapos.recipe.template\noutput = ${buildout:directory}/hello.txt\ninline = Hello ${:name}\nname = world\n";

pub(crate) async fn page<S: Store>(State(console): Shared<S>, viewer: Viewer) -> Response {
    console.page(
        "profiles.html",
        &viewer,
        context! { example => EXAMPLE, location => LOCATION },
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CheckRequest {
    text: String,
}

#[derive(Debug, PartialEq, Serialize)]
pub(crate) struct Finding {
    severity: &'static str,
    line: Option<u32>,
    section: Option<String>,
    option: Option<String>,
    message: String,
}

#[derive(Debug, PartialEq, Serialize)]
pub(crate) struct Checked {
    diagnostics: Vec<Finding>,
    /// The sections that resolved, each option's value as text.
    sections: BTreeMap<String, BTreeMap<String, String>>,
    /// The parts, in the order buildout installs them.
    parts: Vec<String>,
}

/// Loads and resolves `text` alone.
pub(crate) fn check_text(text: &str) -> Checked {
    let mut files = HashMap::new();
    files.insert(LOCATION.to_owned(), text.to_owned());
    let finding = |d: &grove_profile::Diagnostic| Finding {
        severity: match d.severity {
            Severity::Error => "error",
            _ => "warning",
        },
        line: d.line,
        section: d.section.clone(),
        option: d.option.clone(),
        message: d.kind.to_string(),
    };
    let options = LoadOptions {
        cwd: Some("/editor".to_owned()),
        ..LoadOptions::default()
    };
    match grove_profile::load(LOCATION, &files, &options) {
        Err(d) => Checked {
            diagnostics: vec![finding(&d)],
            sections: BTreeMap::new(),
            parts: Vec::new(),
        },
        Ok(profile) => {
            let resolved = profile.resolve();
            let mut diagnostics: Vec<Finding> = profile.diagnostics.iter().map(finding).collect();
            diagnostics.extend(resolved.diagnostics.iter().map(finding));
            diagnostics.dedup();
            Checked {
                diagnostics,
                sections: resolved
                    .sections
                    .iter()
                    .map(|(name, options)| {
                        (
                            name.clone(),
                            options
                                .iter()
                                .map(|(k, v)| (k.clone(), v.as_text().into_owned()))
                                .collect(),
                        )
                    })
                    .collect(),
                parts: resolved.parts,
            }
        }
    }
}

/// `POST /profiles/check`, from the editor's script: the CSRF token in `X-CSRF-Token`.
pub(crate) async fn check<S: Store>(
    State(console): Shared<S>,
    viewer: Viewer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    if let Err(refused) = console.check_csrf(&viewer, sent) {
        return refused;
    }
    let request: CheckRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("expected {{\"text\": \"...\"}}: {e}"),
            )
                .into_response();
        }
    };
    if request.text.len() > MAX_TEXT {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the editor resolves profiles of at most {MAX_TEXT} bytes"),
        )
            .into_response();
    }
    match tokio::task::spawn_blocking(move || check_text(&request.text)).await {
        Ok(checked) => Json(checked).into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the profile engine failed: {e}"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_resolves_cleanly() {
        let checked = check_text(EXAMPLE);
        assert_eq!(checked.diagnostics, vec![], "{checked:?}");
        assert_eq!(checked.sections["hello"]["inline"], "Hello world");
        assert_eq!(checked.parts, vec!["hello"]);
    }

    #[test]
    fn errors_name_their_line_and_other_files_are_not_read() {
        let checked =
            check_text("[buildout]\nparts = a\n\n[a]\nrecipe = r\nx = ${missing:option}\n");
        let error = checked
            .diagnostics
            .iter()
            .find(|d| d.severity == "error")
            .expect("an error");
        assert_eq!(error.section.as_deref(), Some("a"));
        assert!(error.message.contains("missing"), "{error:?}");

        let checked = check_text("[buildout]\nextends = /etc/passwd\n");
        assert!(
            checked
                .diagnostics
                .iter()
                .any(|d| d.severity == "error" && d.message.contains("/etc/passwd")),
            "{checked:?}"
        );
        assert!(
            !format!("{checked:?}").contains("root:"),
            "nothing read from the master's disk"
        );

        let checked = check_text("[buildout\nparts =\n");
        assert_eq!(checked.diagnostics[0].line, Some(1), "{checked:?}");
    }
}
