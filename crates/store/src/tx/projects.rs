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

/// What a project holds against its quota: its instances not destroyed (read by the
/// rules in the transaction and by the readers alike).
pub(crate) const PROJECT_USAGE: &str = "SELECT count(*), count(*) FILTER (WHERE shared = 0), \
     count(*) FILTER (WHERE shared <> 0), CAST(coalesce(sum(size_millicores), 0) AS BIGINT), \
     CAST(coalesce(sum(size_memory), 0) AS BIGINT), CAST(coalesce(sum(size_disk), 0) AS BIGINT) \
     FROM instances WHERE project_id = $1 AND requested_state <> 'destroyed'";

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
            .fetch_one(&mut *self.conn)
            .await?;
        usage_of(&row)
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
