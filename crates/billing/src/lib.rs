//! What use costs: the price list, a month, and the invoice of a project's instances
//! from their hourly ledger, in exact decimal arithmetic (`rust_decimal`; no floats).
//!
//! Quantities are the ledger's integers turned into hours (partition-hours, CPU-hours,
//! GiB-hours of memory, hours of a size) or months (GiB-months of disk, a month being 730
//! hours, a twelfth of a year), shown to six decimal places; a line's amount is the exact
//! product of quantity and unit price, rounded half away from zero to the cent; the total
//! is the sum of the lines.

mod csv;

use std::collections::BTreeMap;

use grove_api as api;
use rust_decimal::{Decimal, RoundingStrategy};

pub use csv::invoice_csv;

/// Why prices or a month are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error("price {field}: {value:?} is not a decimal number of zero or more (like 0.015)")]
    BadPrice { field: String, value: String },
    #[error("currency {0:?}: three capital letters (EUR, USD)")]
    BadCurrency(String),
    #[error("month {0:?}: YYYY-MM, from 1970-01")]
    BadMonth(String),
}

/// The price list, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceList {
    pub currency: String,
    pub partition_hour: Decimal,
    pub cpu_hour: Decimal,
    pub memory_gib_hour: Decimal,
    /// None: disk is not billed.
    pub disk_gib_month: Option<Decimal>,
    /// By size name (a size without a price is not billed beside its partition).
    pub size_hour: BTreeMap<String, Decimal>,
    /// By software release URL, instead of `partition_hour`.
    pub release_partition_hour: BTreeMap<String, Decimal>,
}

fn price(field: &str, value: &str) -> Result<Decimal, BillingError> {
    let bad = || BillingError::BadPrice {
        field: field.to_owned(),
        value: value.to_owned(),
    };
    // Plain decimal notation only: digits and one point (no sign, no exponent).
    let text = value.trim();
    if text.is_empty() || !text.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(bad());
    }
    let parsed: Decimal = text.parse().map_err(|_| bad())?;
    if parsed.is_sign_negative() {
        return Err(bad());
    }
    Ok(parsed)
}

impl PriceList {
    pub fn parse(prices: &api::Prices) -> Result<PriceList, BillingError> {
        let currency = prices.currency.trim();
        if currency.len() != 3 || !currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err(BillingError::BadCurrency(prices.currency.clone()));
        }
        let by_name = |field: &str, map: &BTreeMap<String, String>| {
            map.iter()
                .map(|(name, value)| Ok((name.clone(), price(&format!("{field}.{name}"), value)?)))
                .collect::<Result<BTreeMap<String, Decimal>, BillingError>>()
        };
        Ok(PriceList {
            currency: currency.to_owned(),
            partition_hour: price("partition_hour", &prices.partition_hour)?,
            cpu_hour: price("cpu_hour", &prices.cpu_hour)?,
            memory_gib_hour: price("memory_gib_hour", &prices.memory_gib_hour)?,
            disk_gib_month: prices
                .disk_gib_month
                .as_deref()
                .map(|value| price("disk_gib_month", value))
                .transpose()?,
            size_hour: by_name("size_hour", &prices.size_hour)?,
            release_partition_hour: by_name(
                "release_partition_hour",
                &prices.release_partition_hour,
            )?,
        })
    }

    pub fn to_api(&self) -> api::Prices {
        let texts = |map: &BTreeMap<String, Decimal>| {
            map.iter()
                .map(|(name, value)| (name.clone(), value.to_string()))
                .collect()
        };
        api::Prices {
            currency: self.currency.clone(),
            partition_hour: self.partition_hour.to_string(),
            cpu_hour: self.cpu_hour.to_string(),
            memory_gib_hour: self.memory_gib_hour.to_string(),
            disk_gib_month: self.disk_gib_month.map(|p| p.to_string()),
            size_hour: texts(&self.size_hour),
            release_partition_hour: texts(&self.release_partition_hour),
        }
    }
}

/// A calendar month, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Month {
    pub year: i32,
    /// 1 to 12.
    pub month: u32,
}

/// Days from 1970-01-01 to the first of this month (the proleptic Gregorian calendar).
fn days_to(year: i32, month: u32) -> i64 {
    // Counted from March, so that the leap day is the year's last.
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let m = i64::from(month);
    let day_of_year = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

impl Month {
    pub fn parse(text: &str) -> Result<Month, BillingError> {
        let bad = || BillingError::BadMonth(text.to_owned());
        let (year, month) = text.trim().split_once('-').ok_or_else(bad)?;
        if year.len() != 4 || month.len() != 2 {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        let month: u32 = month.parse().map_err(|_| bad())?;
        if year < 1970 || !(1..=12).contains(&month) {
            return Err(bad());
        }
        Ok(Month { year, month })
    }

    /// Its first second and the next month's, since the epoch.
    pub fn bounds(self) -> (i64, i64) {
        let (next_year, next_month) = if self.month == 12 {
            (self.year + 1, 1)
        } else {
            (self.year, self.month + 1)
        };
        (
            days_to(self.year, self.month) * 86_400,
            days_to(next_year, next_month) * 86_400,
        )
    }
}

impl Month {
    /// The month a second since the epoch falls in.
    pub fn of(at: i64) -> Month {
        let days = at.div_euclid(86_400);
        // From the days since 1970-01-01 to the civil date (the inverse of `days_to`).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z - era * 146_097;
        let year_of_era =
            (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let m = (5 * day_of_year + 2) / 153;
        let month = if m < 10 { m + 3 } else { m - 9 };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Month {
            year: i32::try_from(year).unwrap_or(i32::MAX),
            month: u32::try_from(month).unwrap_or(1),
        }
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// What an instance used in the month: the sums of its ledger's hours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Used {
    pub partition_seconds: i64,
    pub cpu_ms: i64,
    pub memory_byte_seconds: i64,
    pub disk_byte_seconds: i64,
}

/// One instance on an invoice: what it is (its prices depend on its release and size) and
/// what it used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub title: String,
    pub software_release: String,
    pub size: Option<String>,
    pub used: Used,
}

impl Item {
    /// An instance of a release without a size.
    pub fn new(title: &str, software_release: &str, used: Used) -> Item {
        Item {
            title: title.to_owned(),
            software_release: software_release.to_owned(),
            size: None,
            used,
        }
    }
}

const GIB: i64 = 1 << 30;
/// The hours of a month of disk: a twelfth of 365 days.
const MONTH_HOURS: i64 = 730;

/// The invoice of a project's instances for a month.
pub fn invoice(project: &str, month: Month, prices: &PriceList, used: &[Item]) -> api::Invoice {
    let lines = lines(prices, used);
    let total: Decimal = lines.iter().map(|(_, amount)| *amount).sum();
    api::Invoice {
        project: project.to_owned(),
        month: month.to_string(),
        currency: prices.currency.clone(),
        lines: lines.into_iter().map(|(line, _)| line).collect(),
        total: format!("{total:.2}"),
    }
}

/// What this use costs: the sum of its invoice's amounts.
pub fn charged(prices: &PriceList, used: &[Item]) -> Decimal {
    lines(prices, used).iter().map(|(_, amount)| *amount).sum()
}

/// An amount of money (a credit): a decimal number of zero or more.
pub fn parse_amount(value: &str) -> Result<Decimal, BillingError> {
    price("amount", value)
}

/// The lines of an invoice, each with its amount as a number.
fn lines(prices: &PriceList, used: &[Item]) -> Vec<(api::InvoiceLine, Decimal)> {
    let mut lines = Vec::new();
    let mut sorted: Vec<&Item> = used.iter().collect();
    sorted.sort_by(|a, b| a.title.cmp(&b.title));
    for item in sorted {
        let (title, used) = (&item.title, &item.used);
        let hours = Decimal::from(used.partition_seconds) / Decimal::from(3600);
        let mut items = vec![
            (
                "partition-hours".to_owned(),
                hours,
                Some(
                    prices
                        .release_partition_hour
                        .get(&item.software_release)
                        .copied()
                        .unwrap_or(prices.partition_hour),
                ),
            ),
            (
                "cpu-hours".to_owned(),
                Decimal::from(used.cpu_ms) / Decimal::from(3_600_000),
                Some(prices.cpu_hour),
            ),
            (
                "memory-gib-hours".to_owned(),
                Decimal::from(used.memory_byte_seconds) / Decimal::from(GIB) / Decimal::from(3600),
                Some(prices.memory_gib_hour),
            ),
            (
                "disk-gib-months".to_owned(),
                Decimal::from(used.disk_byte_seconds)
                    / Decimal::from(GIB)
                    / Decimal::from(MONTH_HOURS * 3600),
                prices.disk_gib_month,
            ),
        ];
        if let Some(size) = &item.size {
            items.push((
                format!("size-hours ({size})"),
                hours,
                prices.size_hour.get(size).copied(),
            ));
        }
        for (resource, quantity, unit_price) in items {
            // Nothing used, or nothing the price list bills.
            let Some(unit_price) = unit_price.filter(|_| !quantity.is_zero()) else {
                continue;
            };
            let amount = (quantity * unit_price)
                .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero);
            let line = api::InvoiceLine {
                instance: title.clone(),
                resource,
                quantity: quantity
                    .round_dp_with_strategy(6, RoundingStrategy::MidpointAwayFromZero)
                    .normalize()
                    .to_string(),
                unit_price: unit_price.normalize().to_string(),
                amount: format!("{amount:.2}"),
            };
            lines.push((line, amount));
        }
    }
    lines
}

#[cfg(test)]
mod tests;
