//! Placement: which computer gets a new instance.
//!
//! Pure: the caller (the store, inside the transaction that takes the partition) gives the
//! request ([`Ask`]) and the candidate computers ([`Candidate`]); [`place`] runs the
//! filters in a fixed order, each removing the computers that cannot take the instance,
//! then ranks what is left with the policy's weigher ([`Policy`]). When no computer is
//! left, the error names the filter that removed the last ones, so that the user reads
//! why ("no computer with label zone=eu-2").

use std::collections::BTreeMap;

/// A computer that might take the instance, as the store sees it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i64,
    pub reference: String,
    /// Whose computer it is.
    pub owner: i64,
    /// Whether every user may place instances on it (the admin's computers: the cloud's
    /// shared capacity).
    pub shared: bool,
    /// The project it is dedicated to: it then takes that project's instances only.
    pub project: Option<i64>,
    /// What is left of its capacity for sizes; none: its node did not report one.
    pub room: Option<Room>,
    /// `zone=...` and free-form labels.
    pub labels: BTreeMap<String, String>,
    /// Whether the requested software release is supplied (asked to be available) there.
    pub supplied: bool,
    pub free_partitions: u32,
    pub used_partitions: u32,
    /// How many instances of the requester already run there (for spreading; the store
    /// counts them only for the `zone` policy, and then gives every computer the requester
    /// may use, full or not).
    pub requester_instances: u32,
}

/// CPU (thousandths of a core), memory and disk (bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Room {
    pub millicores: u64,
    pub memory: u64,
    pub disk: u64,
}

impl Room {
    /// Whether `self` has room for `needs` in every resource.
    pub fn holds(&self, needs: &Room) -> bool {
        self.millicores >= needs.millicores
            && self.memory >= needs.memory
            && self.disk >= needs.disk
    }
}

/// What is to be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// The user the instance belongs to.
    pub requester: i64,
    /// The project it belongs to, if any.
    pub project: Option<i64>,
    /// The size it asks for (`size=NAME` in the SLA) and what that size needs.
    pub size: Option<(String, Room)>,
    pub software_release: String,
    /// The request's SLA: `computer_guid` names a computer, any other `key=value` must
    /// match a label of the computer.
    pub sla: BTreeMap<String, String>,
}

/// How the computers that fit are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    /// The least loaded first (fewest partitions in use), as Nova's simple scheduler.
    Simple,
    /// Any of them at random, as Nova's default.
    Chance,
    /// Spread a requester's instances across zones: the zone where it has the fewest,
    /// then the least loaded computer there.
    Zone,
    /// The fullest first, so that whole computers stay free.
    Pack,
}

impl Policy {
    pub const ALL: [Policy; 4] = [Policy::Simple, Policy::Chance, Policy::Zone, Policy::Pack];

    pub fn name(self) -> &'static str {
        match self {
            Policy::Simple => "simple",
            Policy::Chance => "chance",
            Policy::Zone => "zone",
            Policy::Pack => "pack",
        }
    }
}

impl std::str::FromStr for Policy {
    type Err = UnknownPolicy;

    fn from_str(text: &str) -> Result<Policy, UnknownPolicy> {
        Policy::ALL
            .into_iter()
            .find(|p| p.name() == text)
            .ok_or_else(|| UnknownPolicy(text.to_owned()))
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown placement policy {0:?}: simple, chance, zone or pack")]
pub struct UnknownPolicy(pub String);

/// The label an SLA's zone matches.
pub const ZONE: &str = "zone";
/// The SLA key that names one computer.
pub const COMPUTER_GUID: &str = "computer_guid";
/// The SLA key that names the instance a shared instance attaches to.
pub const INSTANCE_GUID: &str = "instance_guid";
/// The SLA key that names the size an instance is given.
pub const SIZE: &str = "size";
/// SLA keys that are about the instance, not labels of where it goes.
const NOT_LABELS: &[&str] = &[COMPUTER_GUID, INSTANCE_GUID, SIZE];

/// Whether an SLA key is a label the computer must carry (any key but `computer_guid`,
/// `instance_guid` and `size`).
pub fn is_label(key: &str) -> bool {
    !NOT_LABELS.contains(&key)
}

/// The filters, in the order they run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// The requester may use the computer: its own or a shared one, or one dedicated to
    /// the instance's project.
    Access,
    /// The SLA's `computer_guid`.
    ComputerGuid(String),
    /// An SLA `key=value` that must be a label of the computer.
    Label(String, String),
    /// The software release is supplied there.
    Software(String),
    /// What is left of the computer's capacity holds the size.
    Room(String),
    /// A partition is free there.
    FreePartition,
}

/// No computer can take the instance; `filter` removed the last candidates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", message(.filter, .software_release))]
pub struct NoCapacity {
    pub filter: Filter,
    pub software_release: String,
}

fn message(filter: &Filter, software_release: &str) -> String {
    match filter {
        Filter::Access => "no computer this user may place instances on".to_owned(),
        Filter::ComputerGuid(reference) => format!("no computer {reference:?} this user may use"),
        Filter::Label(key, value) => format!("no computer with label {key}={value}"),
        Filter::Software(url) => format!("no computer has {url} supplied"),
        Filter::Room(size) => {
            format!("no computer with {software_release} supplied has room for size {size}")
        }
        Filter::FreePartition => {
            format!("no free partition with {software_release} supplied")
        }
    }
}

/// A source of randomness for [`Policy::Chance`]: a number below `bound`.
pub trait Dice {
    fn roll(&mut self, bound: usize) -> usize;
}

/// Dice from a seed (a 64-bit xorshift): enough to spread placements, and repeatable in
/// tests.
#[derive(Debug, Clone)]
pub struct SeededDice(u64);

impl SeededDice {
    pub fn new(seed: u64) -> SeededDice {
        SeededDice(seed | 1)
    }
}

impl Dice for SeededDice {
    fn roll(&mut self, bound: usize) -> usize {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        usize::try_from(x % u64::try_from(bound.max(1)).unwrap_or(1)).unwrap_or(0)
    }
}

/// The filters an ask goes through, in order.
pub fn filters(ask: &Ask) -> Vec<Filter> {
    let mut filters = vec![Filter::Access];
    if let Some(reference) = ask.sla.get(COMPUTER_GUID) {
        filters.push(Filter::ComputerGuid(reference.clone()));
    }
    for (key, value) in &ask.sla {
        if is_label(key) {
            filters.push(Filter::Label(key.clone(), value.clone()));
        }
    }
    filters.push(Filter::Software(ask.software_release.clone()));
    if let Some((size, _)) = &ask.size {
        filters.push(Filter::Room(size.clone()));
    }
    filters.push(Filter::FreePartition);
    filters
}

fn passes(filter: &Filter, ask: &Ask, candidate: &Candidate) -> bool {
    match filter {
        Filter::Access => match candidate.project {
            Some(project) => ask.project == Some(project),
            None => candidate.shared || candidate.owner == ask.requester,
        },
        Filter::ComputerGuid(reference) => candidate.reference == *reference,
        Filter::Label(key, value) => candidate.labels.get(key) == Some(value),
        Filter::Software(_) => candidate.supplied,
        Filter::Room(_) => match (&ask.size, &candidate.room) {
            (None, _) => true,
            (Some((_, needs)), Some(room)) => room.holds(needs),
            (Some(_), None) => false,
        },
        Filter::FreePartition => candidate.free_partitions > 0,
    }
}

/// The computers that pass every filter, or the filter that removed the last ones.
pub fn fitting<'c>(
    ask: &Ask,
    candidates: &'c [Candidate],
) -> Result<Vec<&'c Candidate>, NoCapacity> {
    let mut left: Vec<&Candidate> = candidates.iter().collect();
    for filter in filters(ask) {
        left.retain(|c| passes(&filter, ask, c));
        if left.is_empty() {
            return Err(NoCapacity {
                filter,
                software_release: ask.software_release.clone(),
            });
        }
    }
    Ok(left)
}

/// Where the instance goes: the best computer that fits under `policy`.
pub fn place<'c>(
    ask: &Ask,
    candidates: &'c [Candidate],
    policy: Policy,
    dice: &mut dyn Dice,
) -> Result<&'c Candidate, NoCapacity> {
    let mut fit = fitting(ask, candidates)?;
    // Ties go to the lowest reference: the same inputs always give the same answer.
    fit.sort_by(|a, b| a.reference.cmp(&b.reference));
    let chosen = match policy {
        Policy::Simple => fit.iter().min_by_key(|c| c.used_partitions).copied(),
        Policy::Pack => fit
            .iter()
            .min_by_key(|c| (std::cmp::Reverse(c.used_partitions), c.free_partitions))
            .copied(),
        Policy::Chance => fit.get(dice.roll(fit.len())).copied(),
        Policy::Zone => {
            // The requester's instances per zone, over every computer it may use (full
            // ones too: their instances are in that zone all the same).
            let mut per_zone: BTreeMap<Option<&str>, u32> = BTreeMap::new();
            for c in candidates
                .iter()
                .filter(|c| passes(&Filter::Access, ask, c))
            {
                *per_zone
                    .entry(c.labels.get(ZONE).map(String::as_str))
                    .or_default() += c.requester_instances;
            }
            fit.iter()
                .min_by_key(|c| {
                    let zone = c.labels.get(ZONE).map(String::as_str);
                    (per_zone.get(&zone).copied().unwrap_or(0), c.used_partitions)
                })
                .copied()
        }
    };
    // `fit` is never empty here.
    chosen.ok_or(NoCapacity {
        filter: Filter::FreePartition,
        software_release: ask.software_release.clone(),
    })
}
