//! The one client of the master's API: the CLI, the node agent, the recipes (as their
//! partition), the tests and the benchmarks all call the master through [`Client`].
//!
//! - `transport`: who the client is (token, client certificate), which CA it trusts, the
//!   masters of a cloud tried in turn, errors.
//! - `endpoints`: one method per [`grove_api::endpoints::Operation`], its method and path
//!   taken from that table.
//!
//! Blocking: the agent calls it from blocking tasks, the CLI from `main`.

mod endpoints;
mod transport;

pub use transport::{Client, ClientError, Identity, LONG_POLL_MARGIN, SHORT};
