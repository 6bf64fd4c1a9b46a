//! Elasticity: a role of a service scaled between a minimum and a maximum on a measure,
//! as ConPaaS's autoscaler did for web services. The manager measures (the response time
//! of a page of the service, through its proxy) and [`decide`]s; this module is the rule,
//! without IO.

use serde::{Deserialize, Serialize};

/// Above this share of the target, a node is added (ConPaaS's 75 %).
pub const UP: f64 = 0.75;
/// Below this share of the target, a node is removed (ConPaaS's 35 %).
pub const DOWN: f64 = 0.35;

/// What `on_autoscaling` asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub role: String,
    pub min: u32,
    pub max: u32,
    /// The response time aimed at, in milliseconds.
    pub response_time: f64,
    /// The page measured, below the service's URL.
    #[serde(default = "root")]
    pub path: String,
    /// Seconds between two changes.
    #[serde(default = "cool_down")]
    pub cool_down: u64,
}

fn root() -> String {
    "/".to_owned()
}

fn cool_down() -> u64 {
    60
}

/// Why a policy is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("min {min} is more than max {max}")]
    MinOverMax { min: u32, max: u32 },
    #[error("min is at least 1: a role keeps one node")]
    NoNode,
    #[error("the response time aimed at is a number of milliseconds above 0")]
    Target,
    #[error("the path measured starts with /")]
    Path,
}

impl Policy {
    pub fn check(&self) -> Result<(), PolicyError> {
        if self.min == 0 {
            return Err(PolicyError::NoNode);
        }
        if self.min > self.max {
            return Err(PolicyError::MinOverMax {
                min: self.min,
                max: self.max,
            });
        }
        if !(self.response_time.is_finite() && self.response_time > 0.0) {
            return Err(PolicyError::Target);
        }
        if !self.path.starts_with('/') {
            return Err(PolicyError::Path);
        }
        Ok(())
    }
}

/// What to do with the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Up,
    Down,
    Stay,
}

/// The decision for a role of `count` nodes whose measure is `measured` milliseconds,
/// `since` seconds after its last change (none: never changed).
pub fn decide(policy: &Policy, count: u32, measured: f64, since: Option<u64>) -> Decision {
    if since.is_some_and(|s| s < policy.cool_down) {
        return Decision::Stay;
    }
    // Outside the bounds (a policy set on a service of another size): back within.
    if count < policy.min {
        return Decision::Up;
    }
    if count > policy.max {
        return Decision::Down;
    }
    if measured > UP * policy.response_time && count < policy.max {
        Decision::Up
    } else if measured < DOWN * policy.response_time && count > policy.min {
        Decision::Down
    } else {
        Decision::Stay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            role: "web".to_owned(),
            min: 1,
            max: 3,
            response_time: 100.0,
            path: "/".to_owned(),
            cool_down: 30,
        }
    }

    /// Each case: nodes, measured ms, seconds since the last change, the decision.
    #[test]
    fn decisions_from_a_table() {
        let cases: &[(u32, f64, Option<u64>, Decision)] = &[
            (1, 120.0, None, Decision::Up),
            (1, 76.0, Some(31), Decision::Up),
            (1, 74.0, None, Decision::Stay),
            (3, 500.0, None, Decision::Stay),
            (2, 34.0, None, Decision::Down),
            (1, 1.0, None, Decision::Stay),
            (2, 50.0, None, Decision::Stay),
            (1, 500.0, Some(10), Decision::Stay),
            (2, 1.0, Some(29), Decision::Stay),
            (5, 50.0, None, Decision::Down),
            (0, 50.0, None, Decision::Up),
        ];
        for (count, measured, since, expected) in cases {
            assert_eq!(
                decide(&policy(), *count, *measured, *since),
                *expected,
                "{count} nodes, {measured} ms, {since:?}"
            );
        }
    }

    #[test]
    fn policies_are_checked() {
        assert_eq!(policy().check(), Ok(()));
        let bad = |f: fn(&mut Policy)| {
            let mut p = policy();
            f(&mut p);
            p.check().map_err(|e| e.to_string())
        };
        assert_eq!(
            bad(|p| p.min = 0),
            Err("min is at least 1: a role keeps one node".to_owned())
        );
        assert_eq!(
            bad(|p| p.max = 0),
            Err("min 1 is more than max 0".to_owned())
        );
        assert!(bad(|p| p.response_time = f64::NAN).is_err());
        assert!(bad(|p| p.path = "x".to_owned()).is_err());
    }
}
