//! What the master reads: from a pool of connections beside the writer, the same SQL on
//! every backend.

use std::collections::{BTreeMap, HashMap};

use grove_api as api;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};

use crate::{ComputerRow, PrincipalRow, Result, StoreError};

/// The computers a view reads: all or an owner's (`$1`), all or one (`$2`).
macro_rules! computers_chosen {
    () => {
        "($1 IS NULL OR c.owner_id = $1) AND ($2 IS NULL OR c.id = $2)"
    };
}

/// The instance columns [`row_to_instance`] reads, with the computer's reference (a macro,
/// so that queries can be built from it at compile time).
macro_rules! select_instances {
    () => {
        "SELECT i.id, i.title, i.software_release, i.software_type, i.parameters, \
         i.requested_state, i.shared, i.sla, c.reference AS computer, i.partition_reference, \
         i.host_instance_id, i.parent_id, i.root_id, i.reported_state, i.error, i.connection, \
         i.timestamp, i.computer_id, i.reported_timestamp, i.project_id, \
         p.name AS project FROM instances i \
         LEFT JOIN computers c ON c.id = i.computer_id \
         LEFT JOIN projects p ON p.id = i.project_id "
    };
}

macro_rules! select_projects {
    () => {
        "SELECT id, name, quota_instances, quota_partitions, quota_shared, credit, \
         quota_millicores, quota_memory, quota_disk FROM projects "
    };
}

pub(crate) const PROJECT_BY_ID: &str = concat!(select_projects!(), "WHERE id = $1");

pub(crate) fn project_row(row: &AnyRow) -> Result<crate::ProjectRow> {
    use crate::tx::projects::limit;
    Ok(crate::ProjectRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        quota: api::Quota {
            instances: limit(row.try_get(2)?),
            partitions: limit(row.try_get(3)?),
            shared: limit(row.try_get(4)?),
            millicores: limit(row.try_get(6)?),
            memory: limit(row.try_get(7)?),
            disk: limit(row.try_get(8)?),
        },
        credit: row.try_get(5)?,
    })
}

/// A ledger row from its first six columns: hour, partition seconds, CPU, memory, peak,
/// disk.
fn ledger_row(row: &AnyRow) -> Result<crate::LedgerRow> {
    Ok(crate::LedgerRow {
        hour: row.try_get(0)?,
        partition_seconds: row.try_get(1)?,
        cpu_ms: row.try_get(2)?,
        memory_byte_seconds: row.try_get(3)?,
        memory_peak_bytes: row.try_get(4)?,
        disk_byte_seconds: row.try_get(5)?,
    })
}

fn size_amount(row: &AnyRow, column: &str) -> Result<u64> {
    Ok(crate::tx::sizes::count(
        row.try_get::<Option<i64>, _>(column)?.unwrap_or(0),
    ))
}

pub(crate) const INSTANCE_BY_ID: &str = concat!(select_instances!(), "WHERE i.id = $1");

fn json_object(text: &str) -> api::Parameters {
    serde_json::from_str(text).unwrap_or_default()
}

fn requested(text: &str) -> api::RequestedState {
    api::RequestedState::parse(text).unwrap_or(api::RequestedState::Destroyed)
}

pub(crate) fn row_to_instance(row: &AnyRow) -> Result<api::Instance> {
    let reported: Option<String> = row.try_get("reported_state")?;
    let sla: String = row.try_get("sla")?;
    let id: i64 = row.try_get("id")?;
    Ok(api::Instance {
        id,
        title: row.try_get("title")?,
        software_release: row.try_get("software_release")?,
        software_type: row.try_get("software_type")?,
        parameters: json_object(&row.try_get::<String, _>("parameters")?),
        requested_state: requested(&row.try_get::<String, _>("requested_state")?),
        shared: row.try_get::<i64, _>("shared")? != 0,
        sla: serde_json::from_str(&sla).unwrap_or_default(),
        project: row.try_get("project")?,
        computer: row.try_get("computer")?,
        partition: row.try_get("partition_reference")?,
        host_instance: row.try_get("host_instance_id")?,
        parent: row.try_get("parent_id")?,
        root: row.try_get::<Option<i64>, _>("root_id")?.unwrap_or(id),
        reported_state: reported.as_deref().and_then(api::ReportedState::parse),
        error: row.try_get("error")?,
        connection: json_object(&row.try_get::<String, _>("connection")?),
        timestamp: row.try_get("timestamp")?,
        reported_timestamp: row.try_get("reported_timestamp")?,
    })
}

fn principal_row(row: &AnyRow) -> Result<PrincipalRow> {
    Ok(PrincipalRow {
        id: row.try_get(0)?,
        admin: row.try_get::<String, _>(1)? == "admin",
        name: row.try_get(2)?,
        token_hash: row.try_get(3)?,
        certificate_serial: row.try_get(4)?,
    })
}

fn computer_row(row: &AnyRow) -> Result<ComputerRow> {
    Ok(ComputerRow {
        id: row.try_get("id")?,
        reference: row.try_get("reference")?,
        owner_id: row.try_get("owner_id")?,
        token_hash: row.try_get("token_hash")?,
        revision: row.try_get("revision")?,
        certificate_serial: row.try_get("certificate_serial")?,
        project_id: row.try_get("project_id")?,
    })
}

/// The read side of a store.
#[derive(Debug, Clone)]
pub(crate) struct Reads {
    pub(crate) pool: AnyPool,
}

impl Reads {
    pub(crate) async fn principal(&self, id: i64) -> Result<Option<PrincipalRow>> {
        let row = sqlx::query(
            "SELECT id, kind, name, token_hash, certificate_serial FROM principals WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(principal_row).transpose()
    }

    pub(crate) async fn principal_by_name(&self, name: &str) -> Result<Option<PrincipalRow>> {
        let row = sqlx::query(
            "SELECT id, kind, name, token_hash, certificate_serial FROM principals \
             WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(principal_row).transpose()
    }

    pub(crate) async fn computer(&self, id: i64) -> Result<Option<ComputerRow>> {
        let row = sqlx::query(
            "SELECT id, reference, owner_id, token_hash, revision, certificate_serial, project_id \
             FROM computers WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(computer_row).transpose()
    }

    pub(crate) async fn computer_by_reference(
        &self,
        reference: &str,
    ) -> Result<Option<ComputerRow>> {
        let row = sqlx::query(
            "SELECT id, reference, owner_id, token_hash, revision, certificate_serial, project_id \
             FROM computers WHERE reference = $1",
        )
        .bind(reference)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(computer_row).transpose()
    }

    async fn software_list(&self, computer: i64) -> Result<Vec<api::SoftwareInstallation>> {
        let rows = sqlx::query(
            "SELECT url, requested_state, reported_state, error FROM software \
             WHERE computer_id = $1 ORDER BY url",
        )
        .bind(computer)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| software_row(row, 0)).collect()
    }

    /// Every computer (`None`), or the owner's, with their partitions and software: three
    /// statements whatever their number.
    pub(crate) async fn computers(&self, owner: Option<i64>) -> Result<Vec<api::Computer>> {
        self.computer_views(owner, None).await
    }

    /// One computer, as `computers` shows it.
    pub(crate) async fn computer_view(&self, id: i64) -> Result<Option<api::Computer>> {
        Ok(self.computer_views(None, Some(id)).await?.pop())
    }

    async fn computer_views(
        &self,
        owner: Option<i64>,
        id: Option<i64>,
    ) -> Result<Vec<api::Computer>> {
        let rows = sqlx::query(concat!(
            "SELECT c.id, c.reference, c.revision, p.name, c.labels, c.capacity_millicores, \
             c.capacity_memory, c.capacity_disk, c.limits_enforced, c.allocated_millicores, \
             c.allocated_memory, c.allocated_disk, j.name FROM computers c \
             JOIN principals p ON p.id = c.owner_id LEFT JOIN projects j ON j.id = c.project_id \
             WHERE ",
            computers_chosen!(),
            " ORDER BY c.reference"
        ))
        .bind(owner)
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        let mut partitions: HashMap<i64, Vec<api::PartitionInfo>> = HashMap::new();
        for row in sqlx::query(concat!(
            "SELECT p.computer_id, p.reference, p.addresses, p.instance_id FROM partitions p \
             JOIN computers c ON c.id = p.computer_id WHERE ",
            computers_chosen!(),
            " ORDER BY p.computer_id, length(p.reference), p.reference"
        ))
        .bind(owner)
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        {
            let addresses: String = row.try_get(2)?;
            partitions
                .entry(row.try_get(0)?)
                .or_default()
                .push(api::PartitionInfo {
                    reference: row.try_get(1)?,
                    addresses: serde_json::from_str(&addresses).unwrap_or_default(),
                    instance: row.try_get(3)?,
                });
        }
        let mut software: HashMap<i64, Vec<api::SoftwareInstallation>> = HashMap::new();
        for row in sqlx::query(concat!(
            "SELECT s.computer_id, s.url, s.requested_state, s.reported_state, s.error \
             FROM software s JOIN computers c ON c.id = s.computer_id WHERE ",
            computers_chosen!(),
            " ORDER BY s.computer_id, s.url"
        ))
        .bind(owner)
        .bind(id)
        .fetch_all(&self.pool)
        .await?
        {
            software
                .entry(row.try_get(0)?)
                .or_default()
                .push(software_row(&row, 1)?);
        }
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get(0)?;
            let labels: String = row.try_get(4)?;
            let amount = |i: usize| -> Result<Option<u64>> {
                Ok(row
                    .try_get::<Option<i64>, _>(i)?
                    .map(crate::tx::sizes::count))
            };
            let capacity = match (amount(5)?, amount(6)?, amount(7)?) {
                (Some(millicores), Some(memory), Some(disk)) => Some(api::Capacity {
                    millicores,
                    memory,
                    disk,
                    enforced: row.try_get::<i64, _>(8)? != 0,
                }),
                _ => None,
            };
            out.push(api::Computer {
                capacity,
                allocated: api::Resources {
                    millicores: amount(9)?.unwrap_or(0),
                    memory: amount(10)?.unwrap_or(0),
                    disk: amount(11)?.unwrap_or(0),
                },
                project: row.try_get(12)?,
                reference: row.try_get(1)?,
                revision: row.try_get(2)?,
                owner: row.try_get(3)?,
                labels: serde_json::from_str(&labels).unwrap_or_default(),
                partitions: partitions.remove(&id).unwrap_or_default(),
                software: software.remove(&id).unwrap_or_default(),
            });
        }
        Ok(out)
    }

    pub(crate) async fn instance(&self, id: i64) -> Result<Option<api::Instance>> {
        let row = sqlx::query(INSTANCE_BY_ID)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(row_to_instance).transpose()
    }

    pub(crate) async fn instance_owner(&self, id: i64) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT owner_id FROM instances WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The serial of the certificate the instance's partition holds: `None` for no such
    /// instance, `Some(None)` for none held.
    pub(crate) async fn instance_certificate(&self, id: i64) -> Result<Option<Option<String>>> {
        let row = sqlx::query("SELECT certificate_serial FROM instances WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub(crate) async fn instances(&self, owner: Option<i64>) -> Result<Vec<api::Instance>> {
        let rows = sqlx::query(concat!(
            select_instances!(),
            "WHERE $1 IS NULL OR (i.project_id IS NULL AND i.owner_id = $1) \
             OR i.project_id IN (SELECT project_id FROM memberships WHERE principal_id = $1) \
             ORDER BY i.id"
        ))
        .bind(owner)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_to_instance).collect()
    }

    pub(crate) async fn project_by_name(&self, name: &str) -> Result<Option<crate::ProjectRow>> {
        let row = sqlx::query(concat!(select_projects!(), "WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(project_row).transpose()
    }

    /// Every project (`None`), or those the principal is a member of.
    pub(crate) async fn projects(&self, member: Option<i64>) -> Result<Vec<crate::ProjectRow>> {
        let rows = sqlx::query(concat!(
            select_projects!(),
            "WHERE $1 IS NULL OR id IN (SELECT project_id FROM memberships WHERE principal_id = $1) \
             ORDER BY name"
        ))
        .bind(member)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(project_row).collect()
    }

    pub(crate) async fn sizes(&self) -> Result<Vec<api::Size>> {
        let rows = sqlx::query("SELECT name, millicores, memory, disk FROM sizes ORDER BY name")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(crate::tx::sizes::size_of).collect()
    }

    pub(crate) async fn members(&self, project: i64) -> Result<Vec<api::Member>> {
        let rows = sqlx::query(
            "SELECT p.name, m.role FROM memberships m JOIN principals p ON p.id = m.principal_id \
             WHERE m.project_id = $1 ORDER BY p.name",
        )
        .bind(project)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let role: String = row.try_get(1)?;
                Ok(api::Member {
                    user: row.try_get(0)?,
                    role: api::Role::parse(&role).unwrap_or(api::Role::Reader),
                })
            })
            .collect()
    }

    pub(crate) async fn role(&self, project: i64, principal: i64) -> Result<Option<api::Role>> {
        let row =
            sqlx::query("SELECT role FROM memberships WHERE project_id = $1 AND principal_id = $2")
                .bind(project)
                .bind(principal)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?
            .and_then(|role| api::Role::parse(&role)))
    }

    pub(crate) async fn project_usage(&self, project: i64) -> Result<api::QuotaUsage> {
        let row = sqlx::query(crate::tx::projects::PROJECT_USAGE)
            .bind(project)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map_or(
            Ok(api::QuotaUsage::default()),
            crate::tx::projects::usage_of,
        )
    }

    pub(crate) async fn setting(&self, name: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// What each instance of a project used in `[from, to)`: its title and the sums of
    /// its ledger's hours, for the instances that used anything.
    pub(crate) async fn project_ledger(
        &self,
        project: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<crate::InstanceUse>> {
        let rows = sqlx::query(
            "SELECT $2, CAST(sum(l.partition_seconds) AS BIGINT), \
             CAST(sum(l.cpu_ms) AS BIGINT), CAST(sum(l.memory_byte_seconds) AS BIGINT), \
             CAST(max(l.memory_peak_bytes) AS BIGINT), \
             CAST(sum(l.disk_byte_seconds) AS BIGINT), i.title, i.software_release, i.size \
             FROM ledger l JOIN instances i ON i.id = l.instance_id \
             WHERE i.project_id = $1 AND l.hour >= $2 AND l.hour < $3 \
             GROUP BY i.id, i.title, i.software_release, i.size ORDER BY i.title",
        )
        .bind(project)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(crate::InstanceUse {
                    title: row.try_get(6)?,
                    software_release: row.try_get(7)?,
                    size: row.try_get(8)?,
                    used: ledger_row(row)?,
                })
            })
            .collect()
    }

    /// The first and last hours of a project's ledger, if it has any.
    pub(crate) async fn project_ledger_span(&self, project: i64) -> Result<Option<(i64, i64)>> {
        let row = sqlx::query(
            "SELECT min(l.hour), max(l.hour) FROM ledger l JOIN instances i \
             ON i.id = l.instance_id WHERE i.project_id = $1",
        )
        .bind(project)
        .fetch_one(&self.pool)
        .await?;
        let (first, last): (Option<i64>, Option<i64>) = (row.try_get(0)?, row.try_get(1)?);
        Ok(first.zip(last))
    }

    pub(crate) async fn ledger(
        &self,
        instance: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<crate::LedgerRow>> {
        let rows = sqlx::query(
            "SELECT hour, partition_seconds, cpu_ms, memory_byte_seconds, memory_peak_bytes, \
             disk_byte_seconds FROM ledger \
             WHERE instance_id = $1 AND hour >= $2 AND hour < $3 ORDER BY hour",
        )
        .bind(instance)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(ledger_row).collect()
    }

    pub(crate) async fn usage(&self, instance: i64, limit: u32) -> Result<Vec<api::UsageSample>> {
        let rows = sqlx::query(
            "SELECT c.reference, u.partition_reference, u.cpu_seconds, u.memory_bytes, u.at, \
             u.restarts, u.memory_peak_bytes, u.disk_bytes FROM usage u \
             JOIN computers c ON c.id = u.computer_id \
             WHERE u.instance_id = $1 ORDER BY u.at DESC, u.id DESC LIMIT $2",
        )
        .bind(instance)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(api::UsageSample {
                    computer: row.try_get(0)?,
                    partition: row.try_get(1)?,
                    cpu_seconds: row.try_get(2)?,
                    memory_bytes: u64::try_from(row.try_get::<i64, _>(3)?).unwrap_or(0),
                    at: row.try_get(4)?,
                    restarts: u32::try_from(row.try_get::<i64, _>(5)?).unwrap_or(0),
                    memory_peak_bytes: crate::tx::sizes::count(row.try_get(6)?),
                    disk_bytes: crate::tx::sizes::count(row.try_get(7)?),
                })
            })
            .collect()
    }

    pub(crate) async fn desired_state(&self, computer_id: i64) -> Result<api::DesiredState> {
        let Some(computer) = self.computer(computer_id).await? else {
            return Err(StoreError::NotFound(format!("computer {computer_id}")));
        };
        let software = self.software_list(computer_id).await?;
        let rows = sqlx::query(
            "SELECT p.reference AS p_reference, p.addresses, i.id, i.title, i.software_release, \
             i.software_type, i.parameters, i.requested_state, i.connection, i.timestamp, \
             i.size, i.size_millicores, i.size_memory, i.size_disk, r.title AS root_title FROM partitions p LEFT JOIN instances i ON i.id = p.instance_id \
             LEFT JOIN instances r ON r.id = COALESCE(i.root_id, i.id) \
             WHERE p.computer_id = $1 ORDER BY length(p.reference), p.reference",
        )
        .bind(computer_id)
        .fetch_all(&self.pool)
        .await?;
        let shared_rows = sqlx::query(
            "SELECT id, title, software_type, parameters, requested_state, timestamp, \
             host_instance_id FROM instances WHERE computer_id = $1 AND shared = 1 \
             AND host_instance_id IS NOT NULL ORDER BY id",
        )
        .bind(computer_id)
        .fetch_all(&self.pool)
        .await?;
        let mut shared: BTreeMap<i64, Vec<api::SharedInstance>> = BTreeMap::new();
        for row in &shared_rows {
            shared
                .entry(row.try_get(6)?)
                .or_default()
                .push(api::SharedInstance {
                    id: row.try_get(0)?,
                    title: row.try_get(1)?,
                    software_type: row.try_get(2)?,
                    parameters: json_object(&row.try_get::<String, _>(3)?),
                    requested_state: requested(&row.try_get::<String, _>(4)?),
                    timestamp: row.try_get(5)?,
                });
        }
        let mut actions = self.pending_actions(computer_id).await?;
        let mut partitions = Vec::with_capacity(rows.len());
        for row in &rows {
            let addresses: String = row.try_get("addresses")?;
            let id: Option<i64> = row.try_get("id")?;
            let instance = match id {
                Some(id) => Some(api::PartitionInstance {
                    id,
                    title: row.try_get("title")?,
                    root_title: row.try_get("root_title")?,
                    software_release: row.try_get("software_release")?,
                    software_type: row.try_get("software_type")?,
                    requested_state: requested(&row.try_get::<String, _>("requested_state")?),
                    parameters: json_object(&row.try_get::<String, _>("parameters")?),
                    connection: json_object(&row.try_get::<String, _>("connection")?),
                    shared_instances: shared.remove(&id).unwrap_or_default(),
                    timestamp: row.try_get("timestamp")?,
                    token: String::new(),
                    size: match row.try_get::<Option<String>, _>("size")? {
                        Some(name) => Some(api::Size {
                            name,
                            millicores: size_amount(row, "size_millicores")?,
                            memory: size_amount(row, "size_memory")?,
                            disk: size_amount(row, "size_disk")?,
                        }),
                        None => None,
                    },
                    actions: actions.remove(&id).unwrap_or_default(),
                }),
                None => None,
            };
            partitions.push(api::PartitionState {
                reference: row.try_get("p_reference")?,
                addresses: serde_json::from_str(&addresses).unwrap_or_default(),
                instance,
            });
        }
        Ok(api::DesiredState {
            computer: computer.reference,
            revision: computer.revision,
            software,
            partitions,
        })
    }
}

/// A software installation from the row's columns from `first` on: url, requested state,
/// reported state, error.
fn software_row(row: &AnyRow, first: usize) -> Result<api::SoftwareInstallation> {
    let requested: String = row.try_get(first + 1)?;
    let reported: Option<String> = row.try_get(first + 2)?;
    Ok(api::SoftwareInstallation {
        software_release: row.try_get(first)?,
        requested_state: api::SupplyState::parse(&requested).unwrap_or(api::SupplyState::Destroyed),
        reported_state: reported.as_deref().and_then(api::SoftwareState::parse),
        error: row.try_get(first + 3)?,
    })
}
