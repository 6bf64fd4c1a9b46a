//! `grove app`: Roboconf applications.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use grove_roboconf::check::{self, Folder};
use grove_roboconf::tree::Tree;
use grove_roboconf::{Level, Report};

#[derive(Debug, Subcommand)]
pub(crate) enum AppCommand {
    /// Check an application (a folder or a ZIP), a recipe or one graph or instances
    /// file, as Roboconf checks them. Exit 0 when valid, 1 on an error, 2 when the check
    /// could not run.
    Check {
        /// The application's folder or ZIP; a recipe with --recipe; or one DSL file.
        path: PathBuf,
        /// Check an instances file against this graph file.
        #[arg(long)]
        graph: Option<PathBuf>,
        /// PATH is a reusable recipe: graph files, no descriptor.
        #[arg(long)]
        recipe: bool,
        /// Print one JSON object: validity, kind, diagnostics, model.
        #[arg(long)]
        json: bool,
    },
}

/// The check could not run: a path that does not read.
const EXIT_UNCHECKED: u8 = 2;

pub(crate) fn run(command: AppCommand) -> anyhow::Result<ExitCode> {
    match command {
        AppCommand::Check {
            path,
            graph,
            recipe,
            json,
        } => match checked(&path, graph.as_deref(), recipe) {
            Ok(report) => {
                print(&report, json)?;
                Ok(if report.valid {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(crate::EXIT_FAILURE)
                })
            }
            Err(error) => {
                eprintln!("error: {}", crate::error_message(&error));
                Ok(ExitCode::from(EXIT_UNCHECKED))
            }
        },
    }
}

/// Reads an application from a folder or a ZIP.
pub(crate) fn read_tree(path: &Path) -> anyhow::Result<Tree> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(if meta.is_dir() {
        Tree::from_dir(path)?
    } else {
        Tree::from_zip(path)?
    })
}

fn is_zip(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut magic))
        .is_ok()
        && magic == *b"PK\x03\x04"
}

fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The file's name and the folder its imports resolve from.
fn split(path: &Path) -> (String, Folder) {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_owned);
    (name, Folder(folder))
}

fn checked(path: &Path, graph: Option<&Path>, recipe: bool) -> anyhow::Result<Report> {
    let meta = std::fs::metadata(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if recipe {
        return Ok(check::recipe(&read_tree(path)?));
    }
    if meta.is_dir() || is_zip(path) {
        if graph.is_some() {
            anyhow::bail!("--graph checks one instances file, not an application");
        }
        return Ok(check::application(read_tree(path)?).0);
    }
    let text = read_text(path)?;
    let (name, folder) = split(path);
    match graph {
        None => Ok(check::file(&name, &text, &folder, None)),
        Some(graph) => {
            let graph_text = read_text(graph)?;
            let (graph_name, graph_folder) = split(graph);
            Ok(check::file(
                &name,
                &text,
                &folder,
                Some((&graph_name, &graph_text, &graph_folder)),
            ))
        }
    }
}

fn print(report: &Report, json: bool) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer(&mut out, report)?;
        writeln!(out)?;
        return Ok(());
    }
    for d in &report.diagnostics {
        writeln!(out, "{d}")?;
    }
    let errors = report
        .diagnostics
        .iter()
        .filter(|d| d.level == Level::Error)
        .count();
    let warnings = report.diagnostics.len() - errors;
    let kind = serde_json::to_value(report.kind)?;
    let kind = kind.as_str().unwrap_or_default();
    if report.valid {
        write!(out, "{kind}: valid")?;
    } else {
        write!(out, "{kind}: invalid")?;
    }
    writeln!(out, " ({errors} errors, {warnings} warnings)")?;
    if let Some(model) = &report.model
        && report.valid
    {
        if let Some(name) = &model.name {
            writeln!(
                out,
                "{name} {}",
                model.version.as_deref().unwrap_or_default()
            )?;
        }
        writeln!(
            out,
            "{} components ({} at the root), {} facets, {} instances",
            model.components.len(),
            model.root_components.len(),
            model.facets.len(),
            model.instances.len()
        )?;
    }
    Ok(())
}
