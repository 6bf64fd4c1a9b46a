//! ConPaaS applications: a JSON manifest names an application and its services, each a
//! manager and agents by role. [`manifest::check`] reads one and reports every problem
//! with its place in the document (`Services[1].Type`) and its line, under Grove's codes
//! (ConPaaS has none), and gives the plan a deployment follows when it is valid.

pub mod autoscale;
pub mod manifest;
pub mod mysql;
pub mod php;
pub mod service;
