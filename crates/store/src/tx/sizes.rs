//! The statements of sizes: the sizes themselves, what a computer gives (its capacity) and
//! has given (the sizes placed there, summed), and the project a computer is dedicated to.

use grove_api as api;
use sqlx::Row;

use super::{Tx, is_unique_violation};
use crate::{Result, StoreError};

/// A stored count: SQL integers are signed.
pub(crate) fn stored(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl Tx<'_> {
    pub(crate) async fn insert_size(&mut self, size: &api::Size) -> Result<()> {
        sqlx::query("INSERT INTO sizes (name, millicores, memory, disk) VALUES ($1, $2, $3, $4)")
            .bind(&size.name)
            .bind(stored(size.millicores))
            .bind(stored(size.memory))
            .bind(stored(size.disk))
            .execute(&mut *self.conn)
            .await
            .map_err(|e| {
                if is_unique_violation(&e) {
                    StoreError::Conflict(format!("a size {:?} exists", size.name))
                } else {
                    e.into()
                }
            })?;
        Ok(())
    }

    /// Deletes a size; the instances given it keep what they were given.
    pub(crate) async fn delete_size(&mut self, name: &str) -> Result<()> {
        let done = sqlx::query("DELETE FROM sizes WHERE name = $1")
            .bind(name)
            .execute(&mut *self.conn)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no size {name:?}")));
        }
        Ok(())
    }

    pub(crate) async fn size(&mut self, name: &str) -> Result<Option<api::Size>> {
        let row = sqlx::query("SELECT name, millicores, memory, disk FROM sizes WHERE name = $1")
            .bind(name)
            .fetch_optional(&mut *self.conn)
            .await?;
        row.as_ref().map(size_of).transpose()
    }

    /// The size an instance was given.
    pub(crate) async fn instance_size(&mut self, instance: i64) -> Result<Option<api::Size>> {
        let row = sqlx::query(
            "SELECT size, size_millicores, size_memory, size_disk FROM instances \
             WHERE id = $1 AND size IS NOT NULL",
        )
        .bind(instance)
        .fetch_optional(&mut *self.conn)
        .await?;
        row.as_ref().map(size_of).transpose()
    }

    /// Every size.
    pub(crate) async fn sizes(&mut self) -> Result<Vec<api::Size>> {
        let rows = sqlx::query("SELECT name, millicores, memory, disk FROM sizes")
            .fetch_all(&mut *self.conn)
            .await?;
        rows.iter().map(size_of).collect()
    }

    pub(crate) async fn set_capacity(
        &mut self,
        computer: i64,
        capacity: &api::Capacity,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE computers SET capacity_millicores = $2, capacity_memory = $3, \
             capacity_disk = $4, limits_enforced = $5 WHERE id = $1",
        )
        .bind(computer)
        .bind(stored(capacity.millicores))
        .bind(stored(capacity.memory))
        .bind(stored(capacity.disk))
        .bind(i64::from(capacity.enforced))
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// Counts an instance's size on the computer it is placed on (`sign` 1), or gives it
    /// back (`-1`) when its partition is freed.
    pub(crate) async fn allocate(&mut self, computer: i64, instance: i64, sign: i64) -> Result<()> {
        sqlx::query(
            "UPDATE computers SET \
             allocated_millicores = allocated_millicores + $3 * i.size_millicores, \
             allocated_memory = allocated_memory + $3 * i.size_memory, \
             allocated_disk = allocated_disk + $3 * i.size_disk \
             FROM (SELECT size_millicores, size_memory, size_disk FROM instances \
             WHERE id = $2 AND size IS NOT NULL) AS i WHERE computers.id = $1",
        )
        .bind(computer)
        .bind(instance)
        .bind(sign)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }

    /// Dedicates a computer to a project, or (`None`) shares it again.
    pub(crate) async fn set_computer_project(
        &mut self,
        computer: i64,
        project: Option<i64>,
    ) -> Result<()> {
        sqlx::query("UPDATE computers SET project_id = $2 WHERE id = $1")
            .bind(computer)
            .bind(project)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }
}

pub(crate) fn size_of(row: &sqlx::any::AnyRow) -> Result<api::Size> {
    Ok(api::Size {
        name: row.try_get(0)?,
        millicores: count(row.try_get(1)?),
        memory: count(row.try_get(2)?),
        disk: count(row.try_get(3)?),
    })
}
