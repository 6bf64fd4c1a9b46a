//! Principals and their tokens.
//!
//! A token names its principal and carries a secret: `g1.<kind>.<id>.<secret>`, kind `u`
//! for users and the admin, `n` for nodes, `p` for partitions. The store keeps only the
//! SHA-256 of user and node secrets; a partition's secret is an HMAC of its instance id
//! under the master's key, so it is never stored and changes when the partition gets a new
//! instance. Secrets are compared in constant time.

use ring::{digest, hmac, rand::SecureRandom};

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Admin {
        id: i64,
    },
    User {
        id: i64,
    },
    /// A node agent, for its own computer only.
    Node {
        computer: i64,
    },
    /// An instance's partition, acting as that instance.
    Partition {
        instance: i64,
        owner: i64,
    },
}

/// A parsed token: kind, id and secret.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TokenParts<'a> {
    pub kind: &'a str,
    pub id: i64,
    pub secret: &'a str,
}

pub(crate) fn parse_token(token: &str) -> Option<TokenParts<'_>> {
    let mut fields = token.splitn(4, '.');
    if fields.next()? != "g1" {
        return None;
    }
    let kind = fields.next()?;
    let id = fields.next()?.parse().ok()?;
    let secret = fields.next()?;
    (!secret.is_empty()).then_some(TokenParts { kind, id, secret })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A fresh 256-bit secret from the OS random source, as hex.
pub(crate) fn random_secret(rng: &dyn SecureRandom) -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    rng.fill(&mut bytes)?;
    Ok(hex(&bytes))
}

pub(crate) fn hash_secret(secret: &str) -> Vec<u8> {
    digest::digest(&digest::SHA256, secret.as_bytes())
        .as_ref()
        .to_vec()
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn user_token(id: i64, secret: &str) -> String {
    format!("g1.u.{id}.{secret}")
}

pub(crate) fn node_token(computer: i64, secret: &str) -> String {
    format!("g1.n.{computer}.{secret}")
}

/// Partition tokens: derived, never stored.
#[derive(Debug)]
pub(crate) struct PartitionKeys {
    key: hmac::Key,
}

impl PartitionKeys {
    pub(crate) fn new(secret: &[u8]) -> PartitionKeys {
        PartitionKeys {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn tag(&self, instance: i64) -> String {
        hex(hmac::sign(&self.key, format!("partition:{instance}").as_bytes()).as_ref())
    }

    pub(crate) fn token(&self, instance: i64) -> String {
        format!("g1.p.{instance}.{}", self.tag(instance))
    }

    pub(crate) fn verify(&self, instance: i64, secret: &str) -> bool {
        constant_time_eq(self.tag(instance).as_bytes(), secret.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let parts = parse_token("g1.n.42.abcdef").expect("valid");
        assert_eq!(
            parts,
            TokenParts {
                kind: "n",
                id: 42,
                secret: "abcdef"
            }
        );
        assert!(parse_token("g2.n.42.abc").is_none());
        assert!(parse_token("g1.n.x.abc").is_none());
        assert!(parse_token("g1.n.1.").is_none());
        assert!(parse_token("").is_none());
    }

    #[test]
    fn partition_tokens_verify_only_for_their_instance() {
        let keys = PartitionKeys::new(b"0123456789abcdef0123456789abcdef");
        let token = keys.token(7);
        let parts = parse_token(&token).expect("valid");
        assert!(keys.verify(7, parts.secret));
        assert!(!keys.verify(8, parts.secret));
        let other = PartitionKeys::new(b"another key another key another k");
        assert!(!other.verify(7, parts.secret));
    }
}
