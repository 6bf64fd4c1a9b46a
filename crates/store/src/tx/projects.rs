//! The statements of projects: the project, its members and roles, its quota and what it
//! holds against it.

use grove_api as api;
use sqlx::Row;

use super::{Tx, is_unique_violation, now_seconds};
use crate::{ProjectRow, Result, StoreError};

pub(crate) fn limit(value: Option<i64>) -> Option<u64> {
    value.and_then(|v| u64::try_from(v).ok())
}

fn stored(value: Option<u64>) -> Option<i64> {
    value.map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

/// What a project holds against its quota: its instances not destroyed, as the counters
/// kept by [`HOLD_NEW`] and [`HOLD_CHANGE`] say (read by the rules in the transaction and
/// by the readers alike).
pub(crate) const PROJECT_USAGE: &str = "SELECT held_instances, held_partitions, held_shared, \
     held_millicores, held_memory, held_disk FROM projects WHERE id = $1";

/// Adds an instance's share to its project's counters by `d`, computed from the instance
/// row `i` (a macro: the two statements differ in `d` alone).
macro_rules! hold {
    ($d:literal) => {
        concat!(
            "UPDATE projects SET held_instances = held_instances + i.d, \
             held_partitions = held_partitions + i.d * (1 - i.shared), \
             held_shared = held_shared + i.d * i.shared, \
             held_millicores = held_millicores + i.d * coalesce(i.size_millicores, 0), \
             held_memory = held_memory + i.d * coalesce(i.size_memory, 0), \
             held_disk = held_disk + i.d * coalesce(i.size_disk, 0) \
             FROM (SELECT project_id, CASE WHEN shared <> 0 THEN 1 ELSE 0 END AS shared, \
             size_millicores, size_memory, size_disk, ",
            $d,
            " AS d FROM instances WHERE id = $1) AS i \
             WHERE projects.id = i.project_id AND i.d <> 0"
        )
    };
}

/// A new instance counts in its project unless it is requested destroyed.
const HOLD_NEW: &str = hold!("CASE WHEN requested_state <> 'destroyed' THEN 1 ELSE 0 END");

/// Before an instance's requested state becomes `$2`: destroyed, it gives its share
/// back; no longer destroyed, it takes it again.
const HOLD_CHANGE: &str = hold!(
    "CASE WHEN requested_state = 'destroyed' AND $2 <> 'destroyed' THEN 1 \
     WHEN requested_state <> 'destroyed' AND $2 = 'destroyed' THEN -1 ELSE 0 END"
);

pub(crate) fn usage_of(row: &sqlx::any::AnyRow) -> Result<api::QuotaUsage> {
    let count =
        |i: usize| -> Result<u64> { Ok(u64::try_from(row.try_get::<i64, _>(i)?).unwrap_or(0)) };
    Ok(api::QuotaUsage {
        instances: count(0)?,
        partitions: count(1)?,
        shared: count(2)?,
        millicores: count(3)?,
        memory: count(4)?,
        disk: count(5)?,
    })
}

impl Tx<'_> {
    pub(crate) async fn insert_project(&mut self, name: &str) -> Result<i64> {
        let row =
            sqlx::query("INSERT INTO projects (name, created_at) VALUES ($1, $2) RETURNING id")
                .bind(name)
                .bind(now_seconds())
                .fetch_one(&mut *self.conn)
                .await
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::Conflict(format!("a project {name:?} exists"))
                    } else {
                        e.into()
                    }
                })?;
        Ok(row.try_get(0)?)
    }

    pub(crate) async fn project(&mut self, id: i64) -> Result<ProjectRow> {
        let row = sqlx::query(crate::reads::PROJECT_BY_ID)
            .bind(id)
            .fetch_optional(&mut *self.conn)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("no project {id}")))?;
        crate::reads::project_row(&row)
    }

    pub(crate) async fn project_usage(&mut self, id: i64) -> Result<api::QuotaUsage> {
        let row = sqlx::query(PROJECT_USAGE)
            .bind(id)
            .fetch_optional(&mut *self.conn)
            .await?;
        row.as_ref()
            .map_or(Ok(api::QuotaUsage::default()), usage_of)
    }

    /// Counts a new instance in its project.
    pub(crate) async fn hold_new(&mut self, instance: i64) -> Result<()> {
        sqlx::query(HOLD_NEW)
            .bind(instance)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    /// Recounts an instance in its project before its requested state becomes `state`.
    pub(crate) async fn hold_change(
        &mut self,
        instance: i64,
        state: api::RequestedState,
    ) -> Result<()> {
        sqlx::query(HOLD_CHANGE)
            .bind(instance)
            .bind(state.as_str())
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    pub(crate) async fn set_quota(&mut self, id: i64, quota: &api::Quota) -> Result<()> {
        let done = sqlx::query(
            "UPDATE projects SET quota_instances = $2, quota_partitions = $3, quota_shared = $4, \
             quota_millicores = $5, quota_memory = $6, quota_disk = $7 WHERE id = $1",
        )
        .bind(id)
        .bind(stored(quota.instances))
        .bind(stored(quota.partitions))
        .bind(stored(quota.shared))
        .bind(stored(quota.millicores))
        .bind(stored(quota.memory))
        .bind(stored(quota.disk))
        .execute(&mut *self.conn)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no project {id}")));
        }
        Ok(())
    }

    pub(crate) async fn set_credit(&mut self, id: i64, credit: Option<&str>) -> Result<()> {
        let done = sqlx::query("UPDATE projects SET credit = $2 WHERE id = $1")
            .bind(id)
            .bind(credit)
            .execute(&mut *self.conn)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no project {id}")));
        }
        Ok(())
    }

    /// Gives a principal a role in a project, or (`None`) removes them.
    pub(crate) async fn set_member(
        &mut self,
        project: i64,
        principal: i64,
        role: Option<api::Role>,
    ) -> Result<()> {
        match role {
            Some(role) => {
                sqlx::query(
                    "INSERT INTO memberships (project_id, principal_id, role) VALUES ($1, $2, $3) \
                     ON CONFLICT (project_id, principal_id) DO UPDATE SET role = excluded.role",
                )
                .bind(project)
                .bind(principal)
                .bind(role.as_str())
                .execute(&mut *self.conn)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM memberships WHERE project_id = $1 AND principal_id = $2")
                    .bind(project)
                    .bind(principal)
                    .execute(&mut *self.conn)
                    .await?;
            }
        }
        Ok(())
    }

    /// Deletes a project that holds no instance but destroyed ones (which leave it).
    pub(crate) async fn delete_project(&mut self, id: i64) -> Result<()> {
        let usage = self.project_usage(id).await?;
        if usage.instances > 0 {
            return Err(StoreError::Conflict(format!(
                "the project holds {} instance(s) not destroyed: destroy them first",
                usage.instances
            )));
        }
        let dedicated: i64 = sqlx::query("SELECT count(*) FROM computers WHERE project_id = $1")
            .bind(id)
            .fetch_one(&mut *self.conn)
            .await?
            .try_get(0)?;
        if dedicated > 0 {
            return Err(StoreError::Conflict(format!(
                "{dedicated} computer(s) are dedicated to the project: share them again first \
                 (grove computer dedicate REF --shared)"
            )));
        }
        sqlx::query("UPDATE instances SET project_id = NULL WHERE project_id = $1")
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        let done = sqlx::query("DELETE FROM projects WHERE id = $1")
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no project {id}")));
        }
        Ok(())
    }
}
