//! Joining nodes: one-time, expiring join tokens, and the certificate serial a computer's
//! node and an instance's partition hold.

use std::collections::BTreeMap;

use crate::tx::{Holder, Tx};
use crate::{Result, StoreError};

/// A new join token (its hash), for computers owned by `owner` with these labels.
pub(super) async fn create_token(
    tx: &mut Tx<'_>,
    owner: i64,
    hash: &[u8],
    labels: &BTreeMap<String, String>,
    expires_at: i64,
) -> Result<i64> {
    tx.insert_join_token(owner, hash, labels, expires_at).await
}

/// Spends a join token on a new computer whose node holds the certificate `serial`.
/// The token is spent only if the computer is made: a name already taken leaves it
/// usable.
pub(super) async fn join(
    tx: &mut Tx<'_>,
    hash: &[u8],
    reference: &str,
    serial: &str,
    now: i64,
) -> Result<i64> {
    let Some(token) = tx.join_token(hash).await? else {
        return Err(StoreError::Unauthorized("unknown join token".to_owned()));
    };
    if token.used {
        return Err(StoreError::Unauthorized(
            "this join token was used already; make a new one".to_owned(),
        ));
    }
    if token.expires_at <= now {
        return Err(StoreError::Unauthorized(
            "this join token has expired; make a new one".to_owned(),
        ));
    }
    // No node token: the node authenticates with its certificate (an empty hash matches
    // no secret).
    let computer = tx
        .insert_computer(reference, token.owner, Vec::new(), &token.labels)
        .await?;
    tx.set_certificate_serial(Holder::Computer, computer, Some(serial))
        .await?;
    tx.spend_join_token(token.id, now, computer).await?;
    Ok(computer)
}

/// Gives a computer's node a new certificate (renewal), or none (revocation).
pub(super) async fn set_certificate(
    tx: &mut Tx<'_>,
    computer: i64,
    serial: Option<&str>,
) -> Result<()> {
    tx.set_certificate_serial(Holder::Computer, computer, serial)
        .await
}

/// Gives an instance's partition a certificate, or none. A destroyed instance gets none:
/// its partition speaks for no one any more.
pub(super) async fn set_instance_certificate(
    tx: &mut Tx<'_>,
    instance: i64,
    serial: Option<&str>,
) -> Result<()> {
    let loaded = tx.existing(instance).await?;
    if serial.is_some() && loaded.instance.requested_state == grove_api::RequestedState::Destroyed {
        return Err(StoreError::Conflict(format!(
            "instance {instance} is destroyed: its partition gets no certificate"
        )));
    }
    tx.set_certificate_serial(Holder::Instance, instance, serial)
        .await
}
