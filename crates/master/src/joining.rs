//! Joining nodes over HTTPS: the admin makes a one-time, expiring join token; a new node
//! sends it with a certificate request and gets a certificate naming its computer, signed
//! by the master's CA. From then on the node authenticates with that certificate.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use grove_api as api;
use grove_pki::{Identity, Presented};
use grove_store::Store;

use crate::Master;
use crate::auth::{self, Principal};
use crate::error::ApiError;
use crate::routes::{
    Access, Body, Caller, InstanceId, access, instance_owner, managed_computer, own_computer,
    user_of, validate_labels, validate_name,
};

/// How long a join token lasts unless asked otherwise.
const DEFAULT_JOIN_TTL: Duration = Duration::from_secs(3600);
/// The longest a join token may last.
const MAX_JOIN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// How long a node's certificate lasts; the node renews it at half.
pub(crate) const NODE_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// How long a partition's certificate lasts; its node asks for a new one past half.
pub(crate) const PARTITION_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// What a join token starts with (the rest is its secret).
const JOIN_PREFIX: &str = "gj1.";

fn seconds(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn ca<S>(master: &Master<S>) -> Result<&grove_pki::Ca, ApiError> {
    master.ca.as_deref().ok_or_else(|| {
        ApiError::bad_request(
            "this master serves plain HTTP and has no certificate authority: join a master that serves HTTPS",
        )
    })
}

/// Signs a node's certificate request for computer `reference`: certificate, serial, end.
fn node_certificate(
    ca: &grove_pki::Ca,
    rng: &ring::rand::SystemRandom,
    csr: &str,
    reference: &str,
    now: SystemTime,
) -> Result<(String, String, SystemTime), ApiError> {
    ca.sign_request(
        csr,
        &Identity::Computer(reference.to_owned()),
        now,
        NODE_CERTIFICATE_LIFETIME,
        rng,
    )
    .map_err(|e| ApiError::bad_request(format!("csr: {e}")))
}

/// `GET /v1/ca`: public, so that a node can check it against the fingerprint it pins.
pub(crate) async fn ca_certificate<S: Store>(
    State(m): State<Arc<Master<S>>>,
) -> Result<Json<api::CaCertificate>, ApiError> {
    let ca = ca(&m)?;
    Ok(Json(api::CaCertificate {
        certificate: ca.certificate_pem().to_owned(),
        fingerprint: ca.fingerprint(),
    }))
}

/// `POST /v1/join-tokens`: users and the admin; the computer that joins is theirs.
pub(crate) async fn create_join_token<S: Store>(
    State(m): State<Arc<Master<S>>>,
    Caller(caller): Caller,
    Body(new): Body<api::NewJoinToken>,
) -> Result<(StatusCode, Json<api::JoinToken>), ApiError> {
    let owner = user_of(&caller)
        .ok_or_else(|| ApiError::forbidden("only users and the admin make join tokens"))?;
    validate_labels(&new.labels)?;
    let fingerprint = ca(&m)?.fingerprint();
    let ttl = new
        .ttl_seconds
        .map_or(DEFAULT_JOIN_TTL, Duration::from_secs);
    if ttl.is_zero() || ttl > MAX_JOIN_TTL {
        return Err(ApiError::bad_request(format!(
            "ttl_seconds: between 1 and {}",
            MAX_JOIN_TTL.as_secs()
        )));
    }
    let secret = m.secret()?;
    let expires_at = seconds(SystemTime::now() + ttl);
    m.store
        .create_join_token(owner, auth::hash_secret(&secret), new.labels, expires_at)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(api::JoinToken {
            token: format!("{JOIN_PREFIX}{secret}"),
            expires_at,
            ca_fingerprint: fingerprint,
        }),
    ))
}

/// `POST /v1/join`: no other credential than the join token.
pub(crate) async fn join<S: Store>(
    State(m): State<Arc<Master<S>>>,
    Body(request): Body<api::JoinRequest>,
) -> Result<(StatusCode, Json<api::Joined>), ApiError> {
    let ca = ca(&m)?;
    let secret = request
        .token
        .trim()
        .strip_prefix(JOIN_PREFIX)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::unauthorized("not a join token"))?;
    validate_name("computer reference", &request.reference)?;
    let now = SystemTime::now();
    let (certificate, serial, not_after) =
        node_certificate(ca, &m.rng, &request.csr, &request.reference, now)?;
    m.store
        .join(
            auth::hash_secret(secret),
            request.reference.clone(),
            serial,
            seconds(now),
        )
        .await?;
    tracing::info!(computer = %request.reference, "a node joined");
    Ok((
        StatusCode::CREATED,
        Json(api::Joined {
            reference: request.reference,
            certificate,
            expires_at: seconds(not_after),
        }),
    ))
}

/// `POST /v1/computers/{reference}/certificate`: the computer's node only (by its
/// current certificate, or its token).
pub(crate) async fn renew<S: Store>(
    State(m): State<Arc<Master<S>>>,
    Caller(caller): Caller,
    Path(reference): Path<String>,
    Body(request): Body<api::CertificateRequest>,
) -> Result<Json<api::Joined>, ApiError> {
    let ca = ca(&m)?;
    let row = own_computer(&m, &caller, &reference).await?;
    let (certificate, serial, not_after) =
        node_certificate(ca, &m.rng, &request.csr, &row.reference, SystemTime::now())?;
    m.store.set_certificate(row.id, Some(serial)).await?;
    tracing::info!(computer = %row.reference, "node certificate renewed");
    Ok(Json(api::Joined {
        reference: row.reference,
        certificate,
        expires_at: seconds(not_after),
    }))
}

/// `POST /v1/computers/{reference}/revoke`: the admin or the computer's owner; the node's
/// certificate is refused from the next request on, on every master.
pub(crate) async fn revoke<S: Store>(
    State(m): State<Arc<Master<S>>>,
    Caller(caller): Caller,
    Path(reference): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = managed_computer(&m, &caller, &reference).await?;
    m.store.set_certificate(row.id, None).await?;
    tracing::warn!(computer = %row.reference, "node certificate revoked");
    Ok(StatusCode::NO_CONTENT)
}

/// How long a user's client certificate lasts; a new one is asked for again.
const USER_CERTIFICATE_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

/// `POST /v1/users/{name}/certificate`: the admin for anyone, a user for themself.
pub(crate) async fn user_certificate<S: Store>(
    State(m): State<Arc<Master<S>>>,
    Caller(caller): Caller,
    Path(name): Path<String>,
) -> Result<(StatusCode, Json<api::CertificateBundle>), ApiError> {
    let ca = ca(&m)?;
    let row = m
        .store
        .principal_by_name(name.clone())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no user {name:?}")))?;
    let allowed = match caller {
        Principal::Admin { .. } => true,
        Principal::User { id } => id == row.id,
        Principal::Node { .. } | Principal::Partition { .. } => false,
    };
    if !allowed {
        return Err(ApiError::forbidden(
            "only the admin, or the user themself, gets a user's certificate",
        ));
    }
    let issued = ca
        .issue_client(
            &Identity::User(row.name.clone()),
            SystemTime::now(),
            USER_CERTIFICATE_LIFETIME,
            &m.rng,
        )
        .map_err(|e| ApiError::internal(format!("cannot issue a certificate: {e}")))?;
    m.store
        .set_user_certificate(row.id, Some(issued.serial.clone()))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(api::CertificateBundle {
            name: row.name,
            certificate: issued.certificate_pem,
            key: issued.key_pem,
            ca: ca.certificate_pem().to_owned(),
            expires_at: seconds(issued.not_after),
        }),
    ))
}

/// `POST /v1/instances/{id}/certificate`: the node of the instance's computer, for the
/// instance's partition. The store keeps the serial: the partition's previous certificate
/// is refused from then on, and this one once the instance is destroyed.
pub(crate) async fn partition_certificate<S: Store>(
    State(m): State<Arc<Master<S>>>,
    Caller(caller): Caller,
    InstanceId(id): InstanceId,
    Body(request): Body<api::CertificateRequest>,
) -> Result<Json<api::PartitionCertificate>, ApiError> {
    let ca = ca(&m)?;
    let (instance, rights) = access(&m, &caller, id).await?;
    if !rights.contains(&Access::Host) {
        return Err(ApiError::forbidden(format!(
            "only the node running instance {id} asks for its partition's certificate"
        )));
    }
    if instance.shared {
        return Err(ApiError::bad_request(format!(
            "instance {id} is shared: it has no partition of its own"
        )));
    }
    let (certificate, serial, not_after) = ca
        .sign_request(
            &request.csr,
            &Identity::Partition(id),
            SystemTime::now(),
            PARTITION_CERTIFICATE_LIFETIME,
            &m.rng,
        )
        .map_err(|e| ApiError::bad_request(format!("csr: {e}")))?;
    m.store.set_instance_certificate(id, Some(serial)).await?;
    Ok(Json(api::PartitionCertificate {
        instance: id,
        certificate,
        expires_at: seconds(not_after),
    }))
}

/// The principal a verified client certificate stands for: a node for the computer it
/// names, a user by name, as long as the store names this very certificate theirs.
pub(crate) async fn by_certificate<S: Store>(
    master: &Master<S>,
    presented: &Presented,
) -> Result<Caller, ApiError> {
    // Read from the store, not the caches: a renewal or revocation on any master takes
    // effect at once.
    let holder = match &presented.identity {
        Identity::Computer(reference) => master
            .store
            .computer_by_reference(reference.clone())
            .await?
            .map(|row| (row.certificate_serial, Principal::Node { computer: row.id })),
        Identity::User(name) => master
            .store
            .principal_by_name(name.clone())
            .await?
            .map(|row| {
                let principal = if row.admin {
                    Principal::Admin { id: row.id }
                } else {
                    Principal::User { id: row.id }
                };
                (row.certificate_serial, principal)
            }),
        Identity::Partition(id) => return by_partition_certificate(master, *id, presented).await,
        Identity::Master => None,
    };
    match holder {
        Some((Some(held), principal)) if held == presented.serial => Ok(Caller(principal)),
        _ => Err(not_valid_here()),
    }
}

fn not_valid_here() -> ApiError {
    ApiError::unauthorized("this certificate is not (or no longer) valid here")
}

/// A partition's certificate stands for its instance while the instance is not
/// destroyed and the store names this very certificate its partition's.
async fn by_partition_certificate<S: Store>(
    master: &Master<S>,
    id: i64,
    presented: &Presented,
) -> Result<Caller, ApiError> {
    let held = master.store.instance_certificate(id).await?.flatten();
    if held.as_deref() != Some(presented.serial.as_str()) {
        return Err(not_valid_here());
    }
    let instance = master
        .store
        .instance(id)
        .await?
        .ok_or_else(not_valid_here)?;
    if instance.requested_state == api::RequestedState::Destroyed {
        return Err(not_valid_here());
    }
    let owner = instance_owner(&master.store, &instance).await?;
    Ok(Caller(Principal::Partition {
        instance: id,
        owner,
    }))
}
