//! A ConPaaS service as Grove runs it: a manager instance of the type's software release
//! (software type `manager`) whose parameters are the service's [`Spec`], and agents,
//! its child instances of the same release, one software type per role. This module is
//! the rules of that, without IO: which release a type runs, the roles a service starts
//! with, the agents' titles, how counts change with `add_nodes` and `remove_nodes`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::manifest;

/// The software type of a service's manager.
pub const MANAGER: &str = "manager";

/// The releases Grove ships, by service type: built into every node.
pub const RELEASES: &[(&str, &str)] = &[
    ("php", grove_api::apps::CONPAAS_PHP_RELEASE),
    ("mysql", grove_api::apps::CONPAAS_MYSQL_RELEASE),
    ("generic", grove_api::apps::CONPAAS_GENERIC_RELEASE),
];

/// The release Grove ships for a service type.
pub fn builtin_release(kind: &str) -> Option<&'static str> {
    RELEASES.iter().find(|(k, _)| *k == kind).map(|(_, r)| *r)
}

/// The service type a built-in release runs.
pub fn builtin_kind(release: &str) -> Option<&'static str> {
    RELEASES
        .iter()
        .find(|(_, r)| *r == release)
        .map(|(k, _)| *k)
}

/// The roles a service of each type starts with when its manifest gives none: one of
/// each role a working service needs.
pub fn default_roles(kind: &str) -> BTreeMap<String, u32> {
    let roles: &[&str] = match kind {
        "php" | "java" => &["proxy", "web"],
        "mysql" => &["mysql"],
        "xtreemfs" => &["osd"],
        "generic" => &["master"],
        _ => &[],
    };
    roles.iter().map(|r| ((*r).to_owned(), 1)).collect()
}

/// What a manager instance is given: the service as the manifest asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub application: String,
    pub service: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Agents by role, as the service starts.
    pub roles: BTreeMap<String, u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startupscript: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dump: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

impl Spec {
    /// The spec of the `index`th service of a checked manifest's plan. A service without
    /// `ServiceName` is named after its type (and its place, when the type repeats).
    pub fn of(plan: &manifest::Plan, index: usize) -> Option<Spec> {
        let service = plan.services.get(index)?;
        Some(Spec {
            application: plan.application.clone(),
            service: service_name(plan, index),
            kind: service.kind.clone(),
            roles: service
                .startup_instances
                .clone()
                .unwrap_or_else(|| default_roles(&service.kind)),
            archive: service.archive.clone(),
            startupscript: service.startupscript.clone(),
            dump: service.dump.clone(),
            password: service.password.clone(),
        })
    }

    pub fn to_parameters(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }

    pub fn from_parameters(
        parameters: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Spec, String> {
        serde_json::from_value(serde_json::Value::Object(parameters.clone()))
            .map_err(|e| format!("the manager's parameters are no service: {e}"))
    }
}

/// A service's name: its `ServiceName`, else its type, numbered when the type repeats.
pub fn service_name(plan: &manifest::Plan, index: usize) -> String {
    let service = &plan.services[index];
    if let Some(name) = &service.name {
        return name.clone();
    }
    let same = plan
        .services
        .iter()
        .filter(|s| s.name.is_none() && s.kind == service.kind)
        .count();
    if same == 1 {
        return service.kind.clone();
    }
    let nth = plan.services[..index]
        .iter()
        .filter(|s| s.name.is_none() && s.kind == service.kind)
        .count();
    format!("{}-{}", service.kind, nth + 1)
}

/// An agent of a service: its title among the manager's children and its role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Agent {
    pub title: String,
    pub role: String,
}

/// The agents of `roles`: `ROLE-1` to `ROLE-N` for each role, in role order.
pub fn agents(roles: &BTreeMap<String, u32>) -> Vec<Agent> {
    roles
        .iter()
        .flat_map(|(role, count)| {
            (1..=*count).map(move |n| Agent {
                title: format!("{role}-{n}"),
                role: role.clone(),
            })
        })
        .collect()
}

/// Why a change of the node counts is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScaleError {
    #[error("a {kind} service has no role {role:?} (its roles: {known})")]
    UnknownRole {
        kind: String,
        role: String,
        known: String,
    },
    #[error("a count of nodes is at least 1")]
    Zero,
    #[error("role {role} has {has} nodes: cannot remove {asked}")]
    TooMany { role: String, has: u32, asked: u32 },
    #[error("role {role} keeps at least one node")]
    LastNode { role: String },
    #[error("role {role} would have more than {max} nodes")]
    TooLarge { role: String, max: u32 },
}

/// The most nodes a role may have.
pub const MAX_NODES: u32 = 100;

fn known_role(kind: &str, role: &str) -> Result<(), ScaleError> {
    let roles = manifest::TYPES
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(&[][..], |(_, r)| *r);
    if roles.contains(&role) {
        Ok(())
    } else {
        Err(ScaleError::UnknownRole {
            kind: kind.to_owned(),
            role: role.to_owned(),
            known: roles.join(", "),
        })
    }
}

/// `add_nodes`: the counts with `count` more nodes of `role`.
pub fn add_nodes(
    kind: &str,
    roles: &BTreeMap<String, u32>,
    role: &str,
    count: u32,
) -> Result<BTreeMap<String, u32>, ScaleError> {
    known_role(kind, role)?;
    if count == 0 {
        return Err(ScaleError::Zero);
    }
    let mut out = roles.clone();
    let has = out.entry(role.to_owned()).or_insert(0);
    *has = has
        .checked_add(count)
        .filter(|n| *n <= MAX_NODES)
        .ok_or_else(|| ScaleError::TooLarge {
            role: role.to_owned(),
            max: MAX_NODES,
        })?;
    Ok(out)
}

/// `remove_nodes`: the counts with `count` fewer nodes of `role` (the last ones go); a
/// role keeps at least one node, as ConPaaS's managers did.
pub fn remove_nodes(
    kind: &str,
    roles: &BTreeMap<String, u32>,
    role: &str,
    count: u32,
) -> Result<BTreeMap<String, u32>, ScaleError> {
    known_role(kind, role)?;
    if count == 0 {
        return Err(ScaleError::Zero);
    }
    let has = roles.get(role).copied().unwrap_or(0);
    if count > has {
        return Err(ScaleError::TooMany {
            role: role.to_owned(),
            has,
            asked: count,
        });
    }
    if count == has {
        return Err(ScaleError::LastNode {
            role: role.to_owned(),
        });
    }
    let mut out = roles.clone();
    out.insert(role.to_owned(), has - count);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(r, n)| ((*r).to_owned(), *n)).collect()
    }

    #[test]
    fn agents_are_numbered_by_role() {
        let titles: Vec<String> = agents(&roles(&[("web", 2), ("proxy", 1)]))
            .into_iter()
            .map(|a| a.title)
            .collect();
        assert_eq!(titles, ["proxy-1", "web-1", "web-2"]);
    }

    /// Each case: the counts, the change, the new counts or the error.
    #[test]
    fn scaling_from_a_table() {
        type Case<'a> = (
            &'a str,
            bool,
            &'a str,
            u32,
            Result<&'a [(&'a str, u32)], &'a str>,
        );
        let start = roles(&[("proxy", 1), ("web", 1)]);
        let cases: &[Case<'_>] = &[
            ("php", true, "web", 2, Ok(&[("proxy", 1), ("web", 3)])),
            (
                "php",
                true,
                "backend",
                1,
                Ok(&[("backend", 1), ("proxy", 1), ("web", 1)]),
            ),
            (
                "php",
                true,
                "mysql",
                1,
                Err("a php service has no role \"mysql\" (its roles: proxy, web, backend)"),
            ),
            ("php", true, "web", 0, Err("a count of nodes is at least 1")),
            (
                "php",
                true,
                "web",
                100,
                Err("role web would have more than 100 nodes"),
            ),
            (
                "php",
                false,
                "web",
                1,
                Err("role web keeps at least one node"),
            ),
            (
                "php",
                false,
                "web",
                2,
                Err("role web has 1 nodes: cannot remove 2"),
            ),
            (
                "php",
                false,
                "backend",
                1,
                Err("role backend has 0 nodes: cannot remove 1"),
            ),
        ];
        for (kind, add, role, count, expected) in cases {
            let got = if *add {
                add_nodes(kind, &start, role, *count)
            } else {
                remove_nodes(kind, &start, role, *count)
            };
            match expected {
                Ok(pairs) => assert_eq!(got, Ok(roles(pairs)), "{role} {count}"),
                Err(message) => assert_eq!(
                    got.map_err(|e| e.to_string()),
                    Err((*message).to_owned()),
                    "{role} {count}"
                ),
            }
        }
        let three = roles(&[("proxy", 1), ("web", 3)]);
        assert_eq!(remove_nodes("php", &three, "web", 2), Ok(start));
    }

    #[test]
    fn services_are_named_and_specified_from_the_plan() {
        let report = manifest::check(
            r#"{"Application": "shop", "Services": [
                {"Type": "php", "Archive": "http://x/code.tar.gz"},
                {"Type": "mysql", "ServiceName": "db", "Password": "s3cret",
                 "StartupInstances": {"mysql": "2"}},
                {"Type": "generic"}, {"Type": "generic"}]}"#,
        );
        let plan = report.plan.expect("valid");
        let specs: Vec<Spec> = (0..4).filter_map(|i| Spec::of(&plan, i)).collect();
        let names: Vec<&str> = specs.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(names, ["php", "db", "generic-1", "generic-2"]);
        assert_eq!(specs[0].roles, roles(&[("proxy", 1), ("web", 1)]));
        assert_eq!(specs[1].roles, roles(&[("mysql", 2)]));
        assert_eq!(specs[1].password.as_deref(), Some("s3cret"));
        let back = Spec::from_parameters(&specs[0].to_parameters()).expect("round trip");
        assert_eq!(back, specs[0]);
        assert_eq!(builtin_release("php"), Some("grove:conpaas-php"));
        assert_eq!(builtin_release("java"), None);
        assert_eq!(builtin_kind("grove:conpaas-mysql"), Some("mysql"));
    }
}
