//! Roboconf applications as the store keeps them: one row an application (its archive,
//! the master's model of it as JSON, a generation every change bumps) and one a root
//! instance (the Grove instance that is its partition, and what that partition last
//! reported). What the model means is `grove-roboconf`'s; the store keeps it whole and
//! changes it only when the generation the master read is still the current one.

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::reads::Reads;
use crate::tx::{Tx, is_unique_violation};
use crate::{Result, StoreError};

/// What an application is: Roboconf's (an archive and a model of instances) or
/// ConPaaS's (a manifest and its services).
pub const ROBOCONF: &str = "roboconf";
pub const CONPAAS: &str = "conpaas";

/// A new application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewApplication {
    pub name: String,
    /// [`ROBOCONF`] or [`CONPAAS`].
    pub kind: &'static str,
    pub owner: i64,
    pub project: Option<i64>,
    /// The archive as deployed (a ZIP).
    pub archive: Vec<u8>,
    pub model: String,
    pub roots: Vec<String>,
}

/// An application, without its archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplicationRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub owner_id: i64,
    pub project_id: Option<i64>,
    pub model: String,
    pub generation: i64,
}

/// A root instance of an application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RootRow {
    pub root: String,
    /// The Grove instance that is its partition, once requested.
    pub instance_id: Option<i64>,
    /// What its partition last reported (JSON; `{}` before).
    pub report: String,
}

macro_rules! select {
    () => {
        "SELECT id, name, owner_id, project_id, model, generation, kind FROM applications "
    };
}

fn row(row: &AnyRow) -> Result<ApplicationRow> {
    Ok(ApplicationRow {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        owner_id: row.try_get(2)?,
        project_id: row.try_get(3)?,
        model: row.try_get(4)?,
        generation: row.try_get(5)?,
        kind: row.try_get(6)?,
    })
}

/// A statement on a root instance's row changed it, or there is no such row.
fn root_found(rows: u64, id: i64, root: &str) -> Result<()> {
    if rows == 0 {
        return Err(StoreError::NotFound(format!(
            "application {id} has no root instance {root:?}"
        )));
    }
    Ok(())
}

impl Tx<'_> {
    pub(crate) async fn insert_application(&mut self, new: &NewApplication) -> Result<i64> {
        let id: i64 = sqlx::query(
            "INSERT INTO applications (name, owner_id, project_id, archive, model, kind) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(&new.name)
        .bind(new.owner)
        .bind(new.project)
        .bind(&new.archive)
        .bind(&new.model)
        .bind(new.kind)
        .fetch_one(&mut *self.conn)
        .await
        .map_err(|e| {
            if is_unique_violation(&e) {
                StoreError::Conflict(format!("an application {:?} exists", new.name))
            } else {
                e.into()
            }
        })?
        .try_get(0)?;
        for root in &new.roots {
            self.insert_root(id, root).await?;
        }
        Ok(id)
    }

    async fn insert_root(&mut self, id: i64, root: &str) -> Result<()> {
        sqlx::query("INSERT INTO application_roots (application_id, root) VALUES ($1, $2)")
            .bind(id)
            .bind(root)
            .execute(&mut *self.conn)
            .await?;
        Ok(())
    }

    /// Replaces the model if the application is still at `generation`; its roots become
    /// `roots` (new ones without an instance, those that left forgotten). The new
    /// generation.
    pub(crate) async fn update_application(
        &mut self,
        id: i64,
        generation: i64,
        model: &str,
        roots: &[String],
    ) -> Result<i64> {
        let done = sqlx::query(
            "UPDATE applications SET model = $1, generation = generation + 1 \
             WHERE id = $2 AND generation = $3",
        )
        .bind(model)
        .bind(id)
        .bind(generation)
        .execute(&mut *self.conn)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "application {id} changed since generation {generation}: read it again"
            )));
        }
        let kept: Vec<String> =
            sqlx::query("SELECT root FROM application_roots WHERE application_id = $1")
                .bind(id)
                .fetch_all(&mut *self.conn)
                .await?
                .iter()
                .map(|r| r.try_get(0))
                .collect::<std::result::Result<_, _>>()?;
        for old in kept.iter().filter(|r| !roots.contains(r)) {
            sqlx::query("DELETE FROM application_roots WHERE application_id = $1 AND root = $2")
                .bind(id)
                .bind(old)
                .execute(&mut *self.conn)
                .await?;
        }
        for new in roots.iter().filter(|r| !kept.contains(r)) {
            self.insert_root(id, new).await?;
        }
        Ok(generation + 1)
    }

    pub(crate) async fn set_application_root(
        &mut self,
        id: i64,
        root: &str,
        instance: i64,
    ) -> Result<()> {
        let done = sqlx::query(
            "UPDATE application_roots SET instance_id = $1 WHERE application_id = $2 AND root = $3",
        )
        .bind(instance)
        .bind(id)
        .bind(root)
        .execute(&mut *self.conn)
        .await?;
        root_found(done.rows_affected(), id, root)
    }

    /// Keeps what a root's partition reported; the application's new generation.
    pub(crate) async fn report_application(
        &mut self,
        id: i64,
        root: &str,
        report: &str,
    ) -> Result<i64> {
        let done = sqlx::query(
            "UPDATE application_roots SET report = $1 WHERE application_id = $2 AND root = $3",
        )
        .bind(report)
        .bind(id)
        .bind(root)
        .execute(&mut *self.conn)
        .await?;
        root_found(done.rows_affected(), id, root)?;
        let generation: i64 = sqlx::query(
            "UPDATE applications SET generation = generation + 1 WHERE id = $1 RETURNING generation",
        )
        .bind(id)
        .fetch_one(&mut *self.conn)
        .await?
        .try_get(0)?;
        Ok(generation)
    }

    /// The other services' managers of the ConPaaS application whose service `instance`
    /// is the manager of.
    pub(crate) async fn conpaas_siblings(&mut self, instance: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT o.instance_id FROM application_roots r \
             JOIN applications a ON a.id = r.application_id AND a.kind = $1 \
             JOIN application_roots o ON o.application_id = r.application_id \
             WHERE r.instance_id = $2 AND o.instance_id IS NOT NULL AND o.instance_id <> $2",
        )
        .bind(CONPAAS)
        .bind(instance)
        .fetch_all(&mut *self.conn)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Whether `instance` is the manager of a ConPaaS application's service.
    pub(crate) async fn is_conpaas_manager(&mut self, instance: i64) -> Result<bool> {
        let found = sqlx::query(
            "SELECT 1 FROM application_roots r \
             JOIN applications a ON a.id = r.application_id AND a.kind = $1 \
             WHERE r.instance_id = $2",
        )
        .bind(CONPAAS)
        .bind(instance)
        .fetch_optional(&mut *self.conn)
        .await?;
        Ok(found.is_some())
    }

    pub(crate) async fn delete_application(&mut self, id: i64) -> Result<()> {
        sqlx::query("DELETE FROM application_roots WHERE application_id = $1")
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        let done = sqlx::query("DELETE FROM applications WHERE id = $1")
            .bind(id)
            .execute(&mut *self.conn)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("no application {id}")));
        }
        Ok(())
    }
}

impl Reads {
    pub(crate) async fn application(&self, name: &str) -> Result<Option<ApplicationRow>> {
        let found = sqlx::query(concat!(select!(), "WHERE name = $1"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        found.as_ref().map(row).transpose()
    }

    /// Every application (`None`), or those a user owns or is a member of the project of.
    pub(crate) async fn applications(&self, member: Option<i64>) -> Result<Vec<ApplicationRow>> {
        let rows = match member {
            None => {
                sqlx::query(concat!(select!(), "ORDER BY name"))
                    .fetch_all(&self.pool)
                    .await?
            }
            Some(user) => {
                sqlx::query(concat!(
                    select!(),
                    "WHERE owner_id = $1 OR project_id IN \
                     (SELECT project_id FROM memberships WHERE principal_id = $1) ORDER BY name"
                ))
                .bind(user)
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(row).collect()
    }

    pub(crate) async fn application_archive(&self, id: i64) -> Result<Option<Vec<u8>>> {
        let found = sqlx::query("SELECT archive FROM applications WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.map(|r| r.try_get(0)).transpose()?)
    }

    pub(crate) async fn application_roots(&self, id: i64) -> Result<Vec<RootRow>> {
        let rows = sqlx::query(
            "SELECT root, instance_id, report FROM application_roots \
             WHERE application_id = $1 ORDER BY root",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RootRow {
                    root: r.try_get(0)?,
                    instance_id: r.try_get(1)?,
                    report: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// The application and root instance a Grove instance is the partition of.
    pub(crate) async fn application_of_instance(
        &self,
        instance: i64,
    ) -> Result<Option<(ApplicationRow, String)>> {
        let found = sqlx::query(
            "SELECT a.id, a.name, a.owner_id, a.project_id, a.model, a.generation, a.kind, r.root \
             FROM application_roots r JOIN applications a ON a.id = r.application_id \
             WHERE r.instance_id = $1",
        )
        .bind(instance)
        .fetch_optional(&self.pool)
        .await?;
        found.map(|r| Ok((row(&r)?, r.try_get(7)?))).transpose()
    }
}
