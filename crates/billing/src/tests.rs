use super::*;

fn prices(partition: &str, cpu: &str, memory: &str) -> PriceList {
    PriceList::parse(&api::Prices {
        currency: "EUR".to_owned(),
        partition_hour: partition.to_owned(),
        cpu_hour: cpu.to_owned(),
        memory_gib_hour: memory.to_owned(),
    })
    .expect("valid prices")
}

#[test]
fn months_have_their_bounds() {
    for (text, start, end) in [
        ("1970-01", 0, 31 * 86_400),
        ("2024-02", 1_706_745_600, 1_709_251_200), // a leap February: 29 days
        ("2026-11", 1_793_491_200, 1_796_083_200),
        ("2026-12", 1_796_083_200, 1_798_761_600),
    ] {
        let month = Month::parse(text).expect(text);
        assert_eq!(month.bounds(), (start, end), "{text}");
        assert_eq!(month.to_string(), text);
    }
    for bad in [
        "2026-13", "2026-1", "26-11", "1969-12", "november", "2026-00",
    ] {
        assert!(Month::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn prices_are_decimals_of_zero_or_more_in_a_currency() {
    assert_eq!(
        prices("0.010", "0.05", "0").partition_hour.to_string(),
        "0.010"
    );
    for (partition, currency, says) in [
        ("-1", "EUR", "partition_hour"),
        ("1e3", "EUR", "partition_hour"),
        ("0.1", "euro", "currency"),
    ] {
        let error = PriceList::parse(&api::Prices {
            currency: currency.to_owned(),
            partition_hour: partition.to_owned(),
            cpu_hour: "0".to_owned(),
            memory_gib_hour: "0".to_owned(),
        })
        .expect_err("refused");
        assert!(error.to_string().contains(says), "{error}");
    }
}

#[test]
fn an_invoice_is_exact_to_the_cent() {
    let month = Month::parse("2026-11").expect("month");
    let used = [
        (
            "web".to_owned(),
            Used {
                // 720 hours, 90 CPU-hours, 2 GiB held all month.
                partition_seconds: 720 * 3600,
                cpu_ms: 90 * 3_600_000,
                memory_byte_seconds: 2 * GIB * 720 * 3600,
            },
        ),
        (
            "db".to_owned(),
            Used {
                // A third of an hour: 0.333333 shown, the amount from the exact third.
                partition_seconds: 1200,
                cpu_ms: 0,
                memory_byte_seconds: 0,
            },
        ),
    ];
    let got = invoice("shop", month, &prices("0.015", "0.04", "0.005"), &used);
    let lines: Vec<(&str, &str, &str, &str, &str)> = got
        .lines
        .iter()
        .map(|l| {
            (
                l.instance.as_str(),
                l.resource.as_str(),
                l.quantity.as_str(),
                l.unit_price.as_str(),
                l.amount.as_str(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("db", "partition-hours", "0.333333", "0.015", "0.01"),
            ("web", "partition-hours", "720", "0.015", "10.80"),
            ("web", "cpu-hours", "90", "0.04", "3.60"),
            ("web", "memory-gib-hours", "1440", "0.005", "7.20"),
        ]
    );
    assert_eq!(
        (got.total.as_str(), got.currency.as_str()),
        ("21.61", "EUR")
    );
    assert_eq!(got.month, "2026-11");
}

proptest::proptest! {
    /// The total is the sum of the lines, whatever the use.
    #[test]
    fn the_total_is_the_sum_of_the_lines(
        uses in proptest::collection::vec((0i64..10_000_000, 0i64..1_000_000_000, 0i64..1_000_000_000_000), 0..20)
    ) {
        let used: Vec<(String, Used)> = uses
            .iter()
            .enumerate()
            .map(|(i, &(p, c, m))| (format!("i{i}"), Used { partition_seconds: p, cpu_ms: c, memory_byte_seconds: m }))
            .collect();
        let got = invoice("p", Month { year: 2026, month: 11 }, &prices("0.013", "0.0417", "0.0051"), &used);
        let sum: Decimal = got.lines.iter().map(|l| l.amount.parse::<Decimal>().expect("decimal")).sum();
        proptest::prop_assert_eq!(format!("{sum:.2}"), got.total);
    }
}
