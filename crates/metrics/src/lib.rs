//! Metrics as Prometheus reads them: counters, gauges and histograms kept with atomics
//! (recording never blocks a request on a lock but for a family's first sight of a label
//! set), families of them by label values, and the text exposition format (version
//! 0.0.4) written by [`Exposition`]. No IO: the master and the node serve the text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A count that only grows.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Seconds, from a millisecond to a minute: request and deployment durations.
pub const SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Sizes, from one to a thousand: batches.
pub const SIZES: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// Observations counted in buckets (each the count of those at most its bound), with
/// their sum and count.
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [f64],
    buckets: Vec<AtomicU64>,
    /// The sum's bits (an `f64`), changed by compare and swap.
    sum: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &'static [f64]) -> Histogram {
        Histogram {
            bounds,
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
            count: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, value: f64) {
        if let Some(first) = self.bounds.iter().position(|b| value <= *b) {
            self.buckets[first].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let _ = self
            .sum
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |bits| {
                Some((f64::from_bits(bits) + value).to_bits())
            });
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn sum(&self) -> f64 {
        f64::from_bits(self.sum.load(Ordering::Relaxed))
    }

    /// Each bound with the count of observations at most it (cumulative, as Prometheus
    /// reads buckets).
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut total = 0;
        self.bounds
            .iter()
            .zip(&self.buckets)
            .map(|(bound, count)| {
                total += count.load(Ordering::Relaxed);
                (*bound, total)
            })
            .collect()
    }
}

/// Metrics of one kind by their label values, made on first use.
pub struct Family<M> {
    make: Box<dyn Fn() -> M + Send + Sync>,
    members: Mutex<BTreeMap<Vec<String>, Arc<M>>>,
}

impl<M> std::fmt::Debug for Family<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Family").finish_non_exhaustive()
    }
}

impl<M> Family<M> {
    pub fn new(make: impl Fn() -> M + Send + Sync + 'static) -> Family<M> {
        Family {
            make: Box::new(make),
            members: Mutex::new(BTreeMap::new()),
        }
    }

    /// The member for these label values.
    pub fn get(&self, labels: &[&str]) -> Arc<M> {
        let key: Vec<String> = labels.iter().map(|l| (*l).to_owned()).collect();
        let mut members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        Arc::clone(
            members
                .entry(key)
                .or_insert_with(|| Arc::new((self.make)())),
        )
    }

    /// Every member with its label values, in their order.
    pub fn members(&self) -> Vec<(Vec<String>, Arc<M>)> {
        let members = self.members.lock().unwrap_or_else(|e| e.into_inner());
        members
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }
}

impl Family<Histogram> {
    /// Histograms of these bounds.
    pub fn histograms(bounds: &'static [f64]) -> Family<Histogram> {
        Family::new(move || Histogram::new(bounds))
    }
}

/// A label value as the text format writes it (`\`, `"` and newlines escaped).
fn escaped(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn labels(names: &[&str], values: &[String], extra: Option<(&str, String)>) -> String {
    let mut pairs: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| format!("{n}=\"{}\"", escaped(v)))
        .collect();
    if let Some((n, v)) = extra {
        pairs.push(format!("{n}=\"{}\"", escaped(&v)));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", pairs.join(","))
    }
}

fn number(value: f64) -> String {
    if value.is_infinite() {
        if value > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{value}")
    }
}

/// The text a scrape reads, written metric by metric.
#[derive(Debug, Default)]
pub struct Exposition {
    text: String,
}

impl Exposition {
    fn head(&mut self, name: &str, help: &str, kind: &str) {
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub fn counter(&mut self, name: &str, help: &str, counter: &Counter) {
        self.head(name, help, "counter");
        let _ = writeln!(self.text, "{name} {}", counter.get());
    }

    pub fn gauge(&mut self, name: &str, help: &str, gauge: &Gauge) {
        self.head(name, help, "gauge");
        let _ = writeln!(self.text, "{name} {}", gauge.get());
    }

    pub fn counters(
        &mut self,
        name: &str,
        help: &str,
        label_names: &[&str],
        family: &Family<Counter>,
    ) {
        self.head(name, help, "counter");
        for (values, counter) in family.members() {
            let labels = labels(label_names, &values, None);
            let _ = writeln!(self.text, "{name}{labels} {}", counter.get());
        }
    }

    pub fn gauges(&mut self, name: &str, help: &str, label_names: &[&str], family: &Family<Gauge>) {
        self.head(name, help, "gauge");
        for (values, gauge) in family.members() {
            let labels = labels(label_names, &values, None);
            let _ = writeln!(self.text, "{name}{labels} {}", gauge.get());
        }
    }

    pub fn histogram(&mut self, name: &str, help: &str, histogram: &Histogram) {
        self.head(name, help, "histogram");
        self.histogram_samples(name, &[], &[], histogram);
    }

    pub fn histograms(
        &mut self,
        name: &str,
        help: &str,
        label_names: &[&str],
        family: &Family<Histogram>,
    ) {
        self.head(name, help, "histogram");
        for (values, histogram) in family.members() {
            self.histogram_samples(name, label_names, &values, &histogram);
        }
    }

    fn histogram_samples(&mut self, name: &str, names: &[&str], values: &[String], h: &Histogram) {
        for (bound, count) in h.cumulative() {
            let labels = labels(names, values, Some(("le", number(bound))));
            let _ = writeln!(self.text, "{name}_bucket{labels} {count}");
        }
        let all = labels(names, values, Some(("le", "+Inf".to_owned())));
        let _ = writeln!(self.text, "{name}_bucket{all} {}", h.count());
        let plain = labels(names, values, None);
        let _ = writeln!(self.text, "{name}_sum{plain} {}", number(h.sum()));
        let _ = writeln!(self.text, "{name}_count{plain} {}", h.count());
    }

    pub fn finish(self) -> String {
        self.text
    }
}

/// The content type of the text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_format_from_a_table() {
        let requests = Family::new(Counter::default);
        requests.get(&["showInstance", "200"]).add(3);
        requests.get(&["showInstance", "404"]).inc();
        requests.get(&["odd\"name\n", "500"]).inc();
        let sizes = Histogram::new(SIZES);
        for size in [1.0, 3.0, 3.0, 2000.0] {
            sizes.observe(size);
        }
        let up = Gauge::default();
        up.set(7);
        let mut out = Exposition::default();
        out.counters(
            "grove_requests_total",
            "Requests.",
            &["operation", "status"],
            &requests,
        );
        out.histogram("grove_batch_size", "Batch sizes.", &sizes);
        out.gauge("grove_services_up", "Services up.", &up);
        let text = out.finish();
        let expected = [
            "# HELP grove_requests_total Requests.",
            "# TYPE grove_requests_total counter",
            "grove_requests_total{operation=\"odd\\\"name\\n\",status=\"500\"} 1",
            "grove_requests_total{operation=\"showInstance\",status=\"200\"} 3",
            "grove_requests_total{operation=\"showInstance\",status=\"404\"} 1",
            "# TYPE grove_batch_size histogram",
            "grove_batch_size_bucket{le=\"1\"} 1",
            "grove_batch_size_bucket{le=\"2\"} 1",
            "grove_batch_size_bucket{le=\"4\"} 3",
            "grove_batch_size_bucket{le=\"1024\"} 3",
            "grove_batch_size_bucket{le=\"+Inf\"} 4",
            "grove_batch_size_sum 2007",
            "grove_batch_size_count 4",
            "# TYPE grove_services_up gauge",
            "grove_services_up 7",
        ];
        for line in expected {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
    }
}
