//! The profile engine: SlapOS's buildout dialect, read and resolved exactly.
//!
//! A profile is an INI-like file in the dialect zc.buildout defines and SlapOS extends.
//! [`load`] reads the main file and everything it `extends` through a caller-supplied
//! [`Loader`], merges them with the built-in `[buildout]` defaults and the caller's
//! assignments, and gives a [`Profile`]: raw values with their history.
//! [`Profile::resolve`] expands macros, substitutes `${section:option}` references and
//! orders the parts.
//!
//! This crate does no network or process IO of its own, and never panics on any input:
//! every problem is a [`Diagnostic`] that names the file, line, section and option.

mod annotate;
mod cond;
mod error;
mod load;
mod merge;
mod parse;
mod resolve;
mod value;

pub use annotate::Annotation;
pub use cond::{Environment, PathKind};
pub use error::{Diagnostic, ErrorKind, Severity};
pub use load::{Assignment, FileInfo, LoadError, LoadOptions, Loader, Profile, is_url, load};
pub use merge::{HistoryItem, Origin, Section, SectionKey, Sections, Step};
pub use parse::{Op, OptKey, ParseError, ParsedFile, parse, parse_with};
pub use resolve::{Early, Initializer, Resolved};
pub use value::Value;
