//! Instance actions as the store keeps them: one row an action, pending until the node
//! hosting its instance reports how it ended. Pending actions are part of that node's
//! desired state (`Reads::pending_actions`); asking for one wakes the node, and its end
//! names the action in `Changed::actions`, which wakes whoever waits for it on any master.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use crate::Result;
use crate::api::actions::{Action, ActionOutcome, ActionState, PendingAction};
use crate::api::{self, Parameters};
use crate::reads::Reads;
use crate::tx::Tx;

macro_rules! select {
    () => {
        "SELECT id, instance_id, name, parameters, state, result, error, requested_at, \
         finished_at FROM instance_actions "
    };
}

fn object(text: &str) -> Parameters {
    serde_json::from_str(text).unwrap_or_default()
}

fn row(row: &AnyRow) -> Result<Action> {
    let state: String = row.try_get(4)?;
    let result: Option<String> = row.try_get(5)?;
    Ok(Action {
        id: row.try_get(0)?,
        instance: row.try_get(1)?,
        name: row.try_get(2)?,
        parameters: object(&row.try_get::<String, _>(3)?),
        state: ActionState::parse(&state).unwrap_or(ActionState::Failed),
        result: result.and_then(|r| serde_json::from_str(&r).ok()),
        error: row.try_get(6)?,
        requested_at: row.try_get(7)?,
        finished_at: row.try_get(8)?,
    })
}

impl Tx<'_> {
    pub(crate) async fn insert_action(
        &mut self,
        instance: i64,
        name: &str,
        parameters: &Parameters,
    ) -> Result<i64> {
        let now = crate::tx::now_seconds();
        let parameters = serde_json::to_string(parameters).unwrap_or_else(|_| "{}".into());
        Ok(sqlx::query(
            "INSERT INTO instance_actions (instance_id, name, parameters, requested_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(instance)
        .bind(name)
        .bind(parameters)
        .bind(now)
        .fetch_one(&mut *self.conn)
        .await?
        .try_get(0)?)
    }

    /// Ends a pending action; its instance. An action that already ended is not changed
    /// (a node reporting again after a lost answer).
    pub(crate) async fn finish_action(
        &mut self,
        id: i64,
        outcome: &ActionOutcome,
    ) -> Result<Option<i64>> {
        let now = crate::tx::now_seconds();
        let (state, result) = match (&outcome.error, &outcome.result) {
            (Some(_), _) => (ActionState::Failed, None),
            (None, result) => (
                ActionState::Succeeded,
                Some(
                    serde_json::to_string(result.as_ref().unwrap_or(&serde_json::Value::Null))
                        .unwrap_or_else(|_| "null".into()),
                ),
            ),
        };
        let found = sqlx::query(
            "UPDATE instance_actions SET state = $1, result = $2, error = $3, finished_at = $4 \
             WHERE id = $5 AND state = 'pending' RETURNING instance_id",
        )
        .bind(state.as_str())
        .bind(result)
        .bind(outcome.error.as_deref())
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *self.conn)
        .await?;
        Ok(found.map(|r| r.try_get(0)).transpose()?)
    }

    /// Ends every pending action of an instance that will not run them (destroyed).
    pub(crate) async fn abandon_actions(&mut self, instance: i64) -> Result<()> {
        let now = crate::tx::now_seconds();
        sqlx::query(
            "UPDATE instance_actions SET state = 'failed', finished_at = $1, \
             error = 'the instance was destroyed before its node ran the action' \
             WHERE instance_id = $2 AND state = 'pending'",
        )
        .bind(now)
        .bind(instance)
        .execute(&mut *self.conn)
        .await?;
        Ok(())
    }
}

impl Reads {
    pub(crate) async fn action(&self, id: i64) -> Result<Option<Action>> {
        let found = sqlx::query(concat!(select!(), "WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        found.as_ref().map(row).transpose()
    }

    /// An instance's latest actions, newest first.
    pub(crate) async fn actions_of(&self, instance: i64, limit: u32) -> Result<Vec<Action>> {
        let rows = sqlx::query(concat!(
            select!(),
            "WHERE instance_id = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(instance)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row).collect()
    }

    /// The pending actions of the instances on a computer's partitions, by instance, in
    /// the order they were asked for.
    pub(crate) async fn pending_actions(
        &self,
        computer: i64,
    ) -> Result<BTreeMap<i64, Vec<PendingAction>>> {
        let rows = sqlx::query(
            "SELECT a.id, a.instance_id, a.name, a.parameters FROM instance_actions a \
             JOIN partitions p ON p.instance_id = a.instance_id \
             WHERE p.computer_id = $1 AND a.state = 'pending' ORDER BY a.id",
        )
        .bind(computer)
        .fetch_all(&self.pool)
        .await?;
        let mut out: BTreeMap<i64, Vec<PendingAction>> = BTreeMap::new();
        for r in &rows {
            out.entry(r.try_get(1)?).or_default().push(PendingAction {
                id: r.try_get(0)?,
                name: r.try_get(2)?,
                parameters: object(&r.try_get::<String, _>(3)?),
            });
        }
        Ok(out)
    }
}

/// Why an instance takes no action now; none when it does.
pub(crate) fn refusal(loaded: &crate::tx::Loaded) -> Option<String> {
    let instance = &loaded.instance;
    if instance.requested_state == api::RequestedState::Destroyed {
        return Some(format!("instance {} is destroyed", instance.id));
    }
    if instance.shared {
        return Some(format!(
            "instance {} is shared: it has no partition of its own to run actions in",
            instance.id
        ));
    }
    if loaded.computer_id.is_none() {
        return Some(format!("instance {} has no partition", instance.id));
    }
    None
}
