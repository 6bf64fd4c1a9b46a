//! The fast path for a user's new instance in a project or of a size: placed, inserted,
//! given its partition, counted on its computer and in its project in one round trip, as
//! the plain fast path (`insert_first_fit`) does for the others. What it does not place
//! (a title that exists, no room, a quota reached) takes the general path, which says why.

use std::sync::OnceLock;

use grove_api as api;

use super::{FirstFit, NewInstance, Tx, sizes::stored, to_json};
use crate::Result;
use crate::backend::Backend;

/// Which statement: a text for each, so that none has a condition on a parameter being
/// null next to conditions on rows (PostgreSQL keeps one generic plan for each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Variant {
    pub(super) project: bool,
    pub(super) sized: bool,
    pub(super) on_computer: bool,
    pub(super) most_used_first: bool,
}

impl Variant {
    pub(super) const ALL: [Variant; 16] = {
        let mut all = [Variant {
            project: false,
            sized: false,
            on_computer: false,
            most_used_first: false,
        }; 16];
        let mut i = 0;
        while i < 16 {
            all[i] = Variant {
                project: i & 1 != 0,
                sized: i & 2 != 0,
                on_computer: i & 4 != 0,
                most_used_first: i & 8 != 0,
            };
            i += 1;
        }
        all
    };

    fn index(self) -> usize {
        usize::from(self.project)
            | usize::from(self.sized) << 1
            | usize::from(self.on_computer) << 2
            | usize::from(self.most_used_first) << 3
    }
}

/// The insert: the first computer in the policy's order that the requester may use (its
/// own or the admin's not dedicated, or one dedicated to the project), with the release
/// supplied, a free partition and room for the size, when the project's quota holds one
/// more. `$10` a computer, `$11` the project, `$12` the size's name and `$13`-`$15` what
/// it needs (0 without a size); every parameter appears in every text.
fn insert(variant: Variant) -> String {
    let order = if variant.most_used_first {
        "c.used_partitions DESC, c.reference"
    } else {
        "c.used_partitions, c.reference"
    };
    let access = if variant.project {
        "((c.project_id IS NULL AND (c.owner_id = $1 OR p.kind = 'admin')) \
         OR c.project_id = $11)"
    } else {
        "(c.owner_id = $1 OR p.kind = 'admin') AND c.project_id IS NULL"
    };
    let computer = if variant.on_computer {
        "AND c.reference = $10"
    } else {
        "AND $10 IS NULL"
    };
    let room = if variant.sized {
        "AND c.capacity_millicores - c.allocated_millicores >= $13 \
         AND c.capacity_memory - c.allocated_memory >= $14 \
         AND c.capacity_disk - c.allocated_disk >= $15"
    } else {
        ""
    };
    let quota = if variant.project {
        "AND EXISTS (SELECT 1 FROM projects j WHERE j.id = $11 \
         AND (j.quota_instances IS NULL OR j.held_instances < j.quota_instances) \
         AND (j.quota_partitions IS NULL OR j.held_partitions < j.quota_partitions) \
         AND (j.quota_millicores IS NULL OR j.held_millicores + $13 <= j.quota_millicores) \
         AND (j.quota_memory IS NULL OR j.held_memory + $14 <= j.quota_memory) \
         AND (j.quota_disk IS NULL OR j.held_disk + $15 <= j.quota_disk))"
    } else {
        ""
    };
    format!(
        "INSERT INTO instances (owner_id, requester, title, software_release, software_type, \
         parameters, requested_state, shared, sla, timestamp, computer_id, partition_reference, \
         project_id, size, size_millicores, size_memory, size_disk) \
         SELECT $1, $2, $3, $4, $5, $6, $7, 0, $8, $9, cap.id, cap.partition, $11, $12, $13, \
         $14, $15 FROM (\
         SELECT c.id, (SELECT f.reference FROM partitions f WHERE f.computer_id = c.id \
         AND f.instance_id IS NULL ORDER BY length(f.reference), f.reference LIMIT 1) AS partition \
         FROM computers c JOIN principals p ON p.id = c.owner_id \
         WHERE {access} {computer} \
         AND c.free_partitions > 0 AND EXISTS (SELECT 1 FROM software s WHERE \
         s.computer_id = c.id AND s.url = $4 AND s.requested_state = 'available') {room} \
         ORDER BY {order} LIMIT 1) AS cap WHERE cap.partition IS NOT NULL \
         AND NOT EXISTS (SELECT 1 FROM instances WHERE requester = $2 AND title = $3) {quota} \
         RETURNING id, computer_id, partition_reference, \
         (SELECT reference FROM computers WHERE id = computer_id) AS reference, project_id"
    )
}

/// What taking the partition does to the computer and the project.
const COUNTED: &str = "revision = revision + 1, free_partitions = free_partitions - 1, \
     used_partitions = used_partitions + 1, allocated_millicores = allocated_millicores + $13, \
     allocated_memory = allocated_memory + $14, allocated_disk = allocated_disk + $15";
const HELD: &str = "held_instances = held_instances + 1, held_partitions = held_partitions + 1, \
     held_millicores = held_millicores + $13, held_memory = held_memory + $14, \
     held_disk = held_disk + $15";

fn statement(backend: Backend, variant: Variant) -> String {
    let insert = insert(variant);
    match backend {
        // The statements of one query run in turn, each only when the one before changed
        // a row, for the instance just inserted.
        Backend::Sqlite => format!(
            "{insert}; UPDATE partitions SET instance_id = last_insert_rowid() \
             WHERE changes() = 1 AND (computer_id, reference) = \
             (SELECT computer_id, partition_reference FROM instances \
             WHERE id = last_insert_rowid()); \
             UPDATE computers SET {COUNTED} WHERE changes() = 1 AND id = \
             (SELECT computer_id FROM instances WHERE id = last_insert_rowid()); \
             UPDATE projects SET {HELD} WHERE changes() = 1 AND id = $11"
        ),
        Backend::Postgres => format!(
            "WITH ins AS ({insert}), taken AS (UPDATE partitions SET instance_id = ins.id \
             FROM ins WHERE partitions.computer_id = ins.computer_id \
             AND partitions.reference = ins.partition_reference), \
             counted AS (UPDATE computers SET {COUNTED} FROM ins \
             WHERE computers.id = ins.computer_id), \
             held AS (UPDATE projects SET {HELD} FROM ins WHERE projects.id = ins.project_id) \
             SELECT id, computer_id, partition_reference, reference FROM ins"
        ),
    }
}

/// The statement's text for a backend and a variant, made once.
pub(super) fn text(backend: Backend, variant: Variant) -> &'static str {
    static TEXTS: OnceLock<Vec<String>> = OnceLock::new();
    let texts = TEXTS.get_or_init(|| {
        [Backend::Sqlite, Backend::Postgres]
            .into_iter()
            .flat_map(|backend| Variant::ALL.map(|variant| statement(backend, variant)))
            .collect()
    });
    let offset = match backend {
        Backend::Sqlite => 0,
        Backend::Postgres => Variant::ALL.len(),
    };
    &texts[offset + variant.index()]
}

impl Tx<'_> {
    /// The fast path for an instance in a project (`new.project`) or of a size
    /// (`new.size`). `None` when the title exists, nothing fits or the quota is reached.
    pub(crate) async fn insert_first_fit_extended(
        &mut self,
        new: &NewInstance<'_>,
        computer_guid: Option<&str>,
        most_used_first: bool,
    ) -> Result<Option<FirstFit>> {
        let request = new.request;
        let needs = new.size.map(api::Size::resources).unwrap_or_default();
        let variant = Variant {
            project: new.project.is_some(),
            sized: new.size.is_some(),
            on_computer: computer_guid.is_some(),
            most_used_first,
        };
        let rows = sqlx::query(sqlx::AssertSqlSafe(text(self.backend, variant)))
            .bind(new.owner)
            .bind(new.requester)
            .bind(&request.title)
            .bind(&request.software_release)
            .bind(&request.software_type)
            .bind(to_json(&request.parameters, "{}"))
            .bind(new.state.as_str())
            .bind(to_json(&request.sla, "{}"))
            .bind(new.timestamp)
            .bind(computer_guid)
            .bind(new.project)
            .bind(new.size.map(|s| s.name.as_str()))
            .bind(stored(needs.millicores))
            .bind(stored(needs.memory))
            .bind(stored(needs.disk))
            .fetch_all(&mut *self.conn)
            .await?;
        // Only the insert returns a row.
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        FirstFit::from_row(row, 0).map(Some)
    }
}
