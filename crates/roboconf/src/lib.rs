//! Roboconf applications: the DSL of graphs and instances, the model they make, and the
//! checks Roboconf runs on them, reported under Roboconf's code names.
//!
//! The stages, as Roboconf runs them: [`dsl`] parses a file's lines into blocks (`P_`),
//! [`blocks`] checks each block (`PM_`), [`validate::convert`] and
//! [`instances::convert`] make the graph and the instance tree (`CO_`), [`validate`]
//! and [`instances::validate`] check the model (`RM_`) when nothing was found before,
//! [`project`] checks the folder (`PROJ_`, `REC_`), and last the whole application:
//! [`commands`] (`CMD_`) and [`rules`] (`RULE_`). [`check`] runs them in order.

pub mod autonomic;
pub mod blocks;
pub mod check;
pub mod commands;
pub mod deploy;
pub mod descriptor;
pub mod diagnostic;
pub mod dsl;
pub mod exec;
pub mod graph;
pub mod instances;
pub mod lifecycle;
pub mod live;
pub mod project;
pub mod rules;
pub mod runtime;
pub mod script;
pub mod tree;
pub mod validate;
pub mod vars;

pub use check::{Application, Kind, Model, Report};
pub use diagnostic::{Code, Diagnostic, Diagnostics, Level};
