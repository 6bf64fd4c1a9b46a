//! `annotate`: every raw option with where its value came from.

use std::fmt::Write;

use crate::load::Profile;
use crate::merge::{Origin, Step};

/// One raw option and where its value came from: `steps` are `(operator, source)`, the
/// operator `=`, `+=` or `-=`, the source as [`Profile::describe`] names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    pub section: String,
    pub option: String,
    pub value: String,
    pub steps: Vec<(&'static str, String)>,
}

impl Profile {
    /// Names an origin as messages and `annotate` do: `file:line`, or one of
    /// `DEFAULT_VALUE`, `COMPUTED_VALUE`, `COMMAND_LINE_VALUE`, `IMPLICIT_VALUE`.
    pub fn describe(&self, origin: Origin) -> String {
        match origin {
            Origin::File { file, line } => match self.files.get(file as usize) {
                Some(f) => format!("{}:{line}", f.display),
                None => format!("?:{line}"),
            },
            Origin::Default => "DEFAULT_VALUE".to_owned(),
            Origin::Computed => "COMPUTED_VALUE".to_owned(),
            Origin::CommandLine => "COMMAND_LINE_VALUE".to_owned(),
            Origin::Implicit => "IMPLICIT_VALUE".to_owned(),
        }
    }

    /// Every raw option, sections and options sorted, with the steps that made its current
    /// value: the last assignment, then the increments after it.
    pub fn annotations(&self) -> Vec<Annotation> {
        let mut out = Vec::new();
        for (name, section) in &self.sections {
            for (key, value) in section {
                let mut steps = Vec::new();
                for item in value.history().rev() {
                    let source = self.describe(item.origin);
                    match item.step {
                        Step::Add => steps.push(("+=", source)),
                        Step::Remove => steps.push(("-=", source)),
                        Step::Set | Step::Override | Step::Directory => {
                            steps.push(("=", source));
                            break;
                        }
                    }
                }
                steps.reverse();
                out.push(Annotation {
                    section: name.clone(),
                    option: key.to_string(),
                    value: value.value.clone(),
                    steps,
                });
            }
        }
        out
    }

    /// The annotated listing: sections and options sorted, raw values, then the steps that
    /// made the current value (the last assignment and the increments after it).
    pub fn annotate(&self) -> String {
        let mut out = String::from("\nAnnotated sections\n==================\n");
        for (name, section) in &self.sections {
            let _ = write!(out, "\n[{name}]\n");
            for (key, value) in section {
                let mut lines = value.value.lines();
                match lines.next() {
                    Some(first) => {
                        let _ = writeln!(out, "{key}= {first}");
                        for line in lines {
                            let _ = writeln!(out, "{line}");
                        }
                    }
                    None => {
                        let _ = writeln!(out, "{key}=");
                    }
                }
                let mut steps = Vec::new();
                for item in value.history().rev() {
                    let source = self.describe(item.origin);
                    match item.step {
                        Step::Add => steps.push(format!("+=  {source}")),
                        Step::Remove => steps.push(format!("-=  {source}")),
                        Step::Set | Step::Override | Step::Directory => {
                            steps.push(format!("    {source}"));
                            break;
                        }
                    }
                }
                for step in steps.iter().rev() {
                    let _ = writeln!(out, "{step}");
                }
            }
        }
        out
    }
}
