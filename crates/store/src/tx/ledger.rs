//! The statements of the ledger: the samples around a new one, and the hours recounted
//! from them (the counting itself is `crate::ledger`).

use sqlx::Row;

use super::Tx;
use crate::Result;
use crate::ledger::{Amounts, HOUR, Sample};

fn cpu_ms(seconds: f64) -> i64 {
    // Whole milliseconds: the float the node sends goes no further than here.
    #[expect(clippy::cast_possible_truncation, reason = "milliseconds of CPU fit")]
    let ms = (seconds * 1000.0).round() as i64;
    ms.max(0)
}

impl Tx<'_> {
    /// The latest sample of the instance before `at` and the earliest after it.
    async fn neighbours(&mut self, instance: i64, at: i64) -> Result<(Option<i64>, Option<i64>)> {
        let row = sqlx::query(
            "SELECT (SELECT max(at) FROM usage WHERE instance_id = $1 AND at < $2), \
             (SELECT min(at) FROM usage WHERE instance_id = $1 AND at > $2)",
        )
        .bind(instance)
        .bind(at)
        .fetch_one(&mut *self.conn)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// Recounts the hours a new sample of `instance` at `at` may change.
    pub(crate) async fn recount(&mut self, instance: i64, at: i64) -> Result<()> {
        let (before, after) = self.neighbours(instance, at).await?;
        let (first, last) = crate::ledger::touched(at, before, after);
        // Every sample whose interval overlaps those hours: from the last at or before the
        // first hour's start to the first at or after the last hour's end.
        let rows = sqlx::query(
            "SELECT at, cpu_seconds, memory_bytes, memory_peak_bytes, disk_bytes FROM usage \
             WHERE instance_id = $1 \
             AND at >= COALESCE((SELECT max(at) FROM usage WHERE instance_id = $1 AND at <= $2), $2) \
             AND at <= COALESCE((SELECT min(at) FROM usage WHERE instance_id = $1 AND at >= $3), $3) \
             ORDER BY at",
        )
        .bind(instance)
        .bind(first)
        .bind(last + HOUR)
        .fetch_all(&mut *self.conn)
        .await?;
        let mut samples = Vec::with_capacity(rows.len());
        for row in &rows {
            samples.push(Sample {
                at: row.try_get(0)?,
                cpu_ms: cpu_ms(row.try_get(1)?),
                memory_bytes: row.try_get(2)?,
                memory_peak_bytes: row.try_get(3)?,
                disk_bytes: row.try_get(4)?,
            });
        }
        let hours = crate::ledger::account(&samples);
        sqlx::query("DELETE FROM ledger WHERE instance_id = $1 AND hour >= $2 AND hour <= $3")
            .bind(instance)
            .bind(first)
            .bind(last)
            .execute(&mut *self.conn)
            .await?;
        for (hour, amounts) in hours.range(first..=last) {
            let Amounts {
                partition_seconds,
                cpu_ms,
                memory_byte_seconds,
                memory_peak_bytes,
                disk_byte_seconds,
            } = *amounts;
            sqlx::query(
                "INSERT INTO ledger (instance_id, hour, partition_seconds, cpu_ms, \
                 memory_byte_seconds, memory_peak_bytes, disk_byte_seconds) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(instance)
            .bind(*hour)
            .bind(partition_seconds)
            .bind(cpu_ms)
            .bind(memory_byte_seconds)
            .bind(memory_peak_bytes)
            .bind(disk_byte_seconds)
            .execute(&mut *self.conn)
            .await?;
        }
        Ok(())
    }
}
