//! The hourly ledger of an instance, from its usage samples: what it consumed in each
//! hour (seconds it held its partition, CPU milliseconds, memory and disk byte-seconds,
//! and its memory peak).
//!
//! The ledger is a function of the *set* of samples, so a report that comes late, twice
//! or out of order gives the same ledger once it is in. Between two consecutive samples
//! (a, b) the instance held its partition for `b.at - a.at` seconds, used `b.cpu - a.cpu`
//! of CPU (all of `b.cpu` when the counter went back, a restart), and `(a.mem + b.mem) / 2`
//! of memory on average (and of disk alike), at most `b`'s peak of memory (the node's
//! peak since `a`); each is split between the hours the interval overlaps, in whole
//! units, the remainder going to the last hour so that the parts add up exactly. Samples
//! further apart than [`MAX_GAP`] say nothing about the time between them (the node was
//! not heard): that time is not counted.

use std::collections::BTreeMap;

/// Seconds in an hour: ledger rows are keyed by the hour's first second.
pub(crate) const HOUR: i64 = 3600;

/// The latest time a sample may have (year 36812): hours after it would not add up.
pub(crate) const LAST_SECOND: i64 = 1 << 40;

/// The longest silence between two samples that still counts as held.
pub(crate) const MAX_GAP: i64 = HOUR;

/// One measurement of an instance's partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sample {
    /// Seconds since the epoch, when the node measured it.
    pub(crate) at: i64,
    /// Cumulative CPU time, milliseconds.
    pub(crate) cpu_ms: i64,
    pub(crate) memory_bytes: i64,
    /// The most memory used since the sample before.
    pub(crate) memory_peak_bytes: i64,
    pub(crate) disk_bytes: i64,
}

/// What an instance consumed in one hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Amounts {
    pub(crate) partition_seconds: i64,
    pub(crate) cpu_ms: i64,
    pub(crate) memory_byte_seconds: i64,
    /// The most memory used in the hour.
    pub(crate) memory_peak_bytes: i64,
    pub(crate) disk_byte_seconds: i64,
}

impl Amounts {
    fn add(&mut self, other: Amounts) {
        self.partition_seconds += other.partition_seconds;
        self.cpu_ms += other.cpu_ms;
        self.memory_byte_seconds = self
            .memory_byte_seconds
            .saturating_add(other.memory_byte_seconds);
        self.memory_peak_bytes = self.memory_peak_bytes.max(other.memory_peak_bytes);
        self.disk_byte_seconds = self
            .disk_byte_seconds
            .saturating_add(other.disk_byte_seconds);
    }
}

pub(crate) fn hour_of(at: i64) -> i64 {
    at.div_euclid(HOUR) * HOUR
}

/// `total` split in proportion to `part` of `whole`, rounded down.
fn share(total: i128, part: i64, whole: i64) -> i128 {
    total * i128::from(part) / i128::from(whole)
}

/// The ledger of these samples (in any order, repeated or not), hour by hour.
pub(crate) fn account(samples: &[Sample]) -> BTreeMap<i64, Amounts> {
    let mut sorted: Vec<Sample> = samples.to_vec();
    sorted.sort_by_key(|s| s.at);
    sorted.dedup_by_key(|s| s.at);
    let mut hours: BTreeMap<i64, Amounts> = BTreeMap::new();
    for pair in sorted.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        let duration = b.at - a.at;
        if duration <= 0 || duration > MAX_GAP {
            continue;
        }
        let cpu = i128::from(if b.cpu_ms >= a.cpu_ms {
            b.cpu_ms - a.cpu_ms
        } else {
            b.cpu_ms
        });
        let memory =
            (i128::from(a.memory_bytes) + i128::from(b.memory_bytes)) * i128::from(duration) / 2;
        let disk = (i128::from(a.disk_bytes) + i128::from(b.disk_bytes)) * i128::from(duration) / 2;
        let peak = b.memory_peak_bytes.max(b.memory_bytes);
        let (mut cpu_left, mut memory_left, mut disk_left) = (cpu, memory, disk);
        let mut start = a.at;
        while start < b.at {
            let end = (hour_of(start) + HOUR).min(b.at);
            let part = end - start;
            let last = end == b.at;
            let (cpu_part, memory_part, disk_part) = if last {
                (cpu_left, memory_left, disk_left)
            } else {
                (
                    share(cpu, part, duration),
                    share(memory, part, duration),
                    share(disk, part, duration),
                )
            };
            cpu_left -= cpu_part;
            memory_left -= memory_part;
            disk_left -= disk_part;
            hours.entry(hour_of(start)).or_default().add(Amounts {
                partition_seconds: part,
                cpu_ms: i64::try_from(cpu_part).unwrap_or(i64::MAX),
                memory_byte_seconds: i64::try_from(memory_part).unwrap_or(i64::MAX),
                memory_peak_bytes: peak,
                disk_byte_seconds: i64::try_from(disk_part).unwrap_or(i64::MAX),
            });
            start = end;
        }
    }
    hours
}

/// The hours a new sample at `at` may change, given the samples next to it (the latest
/// before, the earliest after): from the hour of the one before (or of `at`) to the hour
/// of the one after (or of `at`). Recounting those hours needs the samples from the last
/// one at or before the first hour's start to the first one at or after the last hour's
/// end.
pub(crate) fn touched(at: i64, before: Option<i64>, after: Option<i64>) -> (i64, i64) {
    (hour_of(before.unwrap_or(at)), hour_of(after.unwrap_or(at)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_798_000_000 - 1_798_000_000 % HOUR; // an hour's first second

    fn s(at: i64, cpu_ms: i64, memory_bytes: i64) -> Sample {
        Sample {
            at: T + at,
            cpu_ms,
            memory_bytes,
            memory_peak_bytes: 0,
            disk_bytes: 0,
        }
    }

    fn a(partition_seconds: i64, cpu_ms: i64, memory_byte_seconds: i64) -> (i64, i64, i64) {
        (partition_seconds, cpu_ms, memory_byte_seconds)
    }

    /// Partition seconds, CPU and memory byte-seconds of each hour.
    fn check(samples: &[Sample], expected: &[(i64, (i64, i64, i64))]) {
        let got: Vec<(i64, (i64, i64, i64))> = account(samples)
            .into_iter()
            .map(|(hour, x)| {
                (
                    hour - T,
                    (x.partition_seconds, x.cpu_ms, x.memory_byte_seconds),
                )
            })
            .collect();
        assert_eq!(got, expected, "{samples:?}");
    }

    #[test]
    fn disk_is_counted_like_memory_and_each_hour_keeps_its_peak() {
        let sample = |at: i64, memory: i64, peak: i64, disk: i64| Sample {
            at: T + at,
            cpu_ms: 0,
            memory_bytes: memory,
            memory_peak_bytes: peak,
            disk_bytes: disk,
        };
        let hours = account(&[
            sample(3000, 10, 10, 1_000),
            sample(3600, 20, 900, 3_000),
            sample(4200, 30, 50, 3_000),
        ]);
        let first = hours[&T];
        let second = hours[&(T + HOUR)];
        // 600 s at (1000 + 3000) / 2 bytes; then 600 s at 3000.
        assert_eq!(first.disk_byte_seconds, 1_200_000);
        assert_eq!(second.disk_byte_seconds, 1_800_000);
        // The peak the node saw up to each sample, in the hour it fell in.
        assert_eq!(
            (first.memory_peak_bytes, second.memory_peak_bytes),
            (900, 50)
        );
    }

    #[test]
    fn samples_make_hours() {
        // One interval inside an hour.
        check(
            &[s(0, 0, 100), s(60, 30_000, 300)],
            &[(0, a(60, 30_000, 12_000))],
        );
        // Across an hour: split by time, the remainder in the last hour.
        check(
            &[s(3540, 1_000, 10), s(3660, 1_007, 10)],
            &[(0, a(60, 3, 600)), (HOUR, a(60, 4, 600))],
        );
        // A counter that went back (a restart): all of the new value.
        check(&[s(0, 50_000, 0), s(60, 2_000, 0)], &[(0, a(60, 2_000, 0))]);
        // A silence longer than MAX_GAP is not counted.
        check(&[s(0, 0, 0), s(MAX_GAP + 1, 10, 0)], &[]);
        // One sample alone says nothing.
        check(&[s(0, 5, 5)], &[]);
    }

    #[test]
    fn the_order_and_repeats_of_reports_do_not_matter() {
        let ordered = [
            s(0, 0, 100),
            s(60, 1_000, 100),
            s(3590, 9_000, 200),
            s(3650, 9_500, 200),
        ];
        let expected = account(&ordered);
        let shuffled = [ordered[3], ordered[1], ordered[0], ordered[2], ordered[1]];
        assert_eq!(account(&shuffled), expected);
        // Every part adds up to the whole: nothing is lost to rounding.
        let cpu: i64 = expected.values().map(|x| x.cpu_ms).sum();
        assert_eq!(cpu, 9_500);
    }

    #[test]
    fn a_new_sample_touches_the_hours_between_its_neighbours() {
        assert_eq!(touched(T + 10, None, None), (T, T));
        assert_eq!(
            touched(T + 10, Some(T - 5), Some(T + HOUR + 1)),
            (T - HOUR, T + HOUR)
        );
    }

    proptest::proptest! {
        #[test]
        fn any_split_adds_up(points in proptest::collection::vec((0i64..20_000, 0i64..1_000_000, 0i64..1_000_000), 2..40)) {
            let samples: Vec<Sample> = points.iter().map(|&(at, cpu, mem)| s(at, cpu, mem)).collect();
            let hours = account(&samples);
            let total_seconds: i64 = hours.values().map(|x| x.partition_seconds).sum();
            let mut sorted = samples.clone();
            sorted.sort_by_key(|x| x.at);
            sorted.dedup_by_key(|x| x.at);
            let counted: i64 = sorted
                .windows(2)
                .map(|p| p[1].at - p[0].at)
                .filter(|d| *d <= MAX_GAP)
                .sum();
            proptest::prop_assert_eq!(total_seconds, counted);
        }
    }
}
