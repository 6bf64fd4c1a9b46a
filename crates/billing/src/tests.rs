use super::*;

fn prices(partition: &str, cpu: &str, memory: &str) -> PriceList {
    PriceList::parse(&api::Prices {
        currency: "EUR".to_owned(),
        partition_hour: partition.to_owned(),
        cpu_hour: cpu.to_owned(),
        memory_gib_hour: memory.to_owned(),
        disk_gib_month: None,
        size_hour: Default::default(),
        release_partition_hour: Default::default(),
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
            disk_gib_month: None,
            size_hour: Default::default(),
            release_partition_hour: Default::default(),
        })
        .expect_err("refused");
        assert!(error.to_string().contains(says), "{error}");
    }
}

#[test]
fn an_invoice_is_exact_to_the_cent() {
    let month = Month::parse("2026-11").expect("month");
    let used = [
        Item::new(
            "web",
            "sr.cfg",
            Used {
                // 720 hours, 90 CPU-hours, 2 GiB held all month.
                partition_seconds: 720 * 3600,
                cpu_ms: 90 * 3_600_000,
                memory_byte_seconds: 2 * GIB * 720 * 3600,
                // Unbilled: no disk price.
                disk_byte_seconds: GIB * 3600,
            },
        ),
        Item::new(
            "db",
            "sr.cfg",
            Used {
                // A third of an hour: 0.333333 shown, the amount from the exact third.
                partition_seconds: 1200,
                ..Used::default()
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

#[test]
fn disk_sizes_and_releases_have_their_own_prices() {
    let month = Month::parse("2026-11").expect("month");
    let mut list = prices("0.01", "0", "0");
    list.disk_gib_month = Some(Decimal::new(10, 2)); // 0.10 a GiB-month
    list.size_hour
        .insert("small".to_owned(), Decimal::new(2, 2)); // 0.02 an hour
    list.release_partition_hour
        .insert("premium.cfg".to_owned(), Decimal::new(5, 2)); // 0.05 an hour
    let used = Used {
        // 730 hours with 3 GiB of disk: 3 GiB-months.
        partition_seconds: 730 * 3600,
        disk_byte_seconds: 3 * GIB * 730 * 3600,
        ..Used::default()
    };
    let items = [
        Item {
            size: Some("small".to_owned()),
            ..Item::new("a", "sr.cfg", used)
        },
        Item::new("b", "premium.cfg", used),
        // A size without a price is billed as its partition alone.
        Item {
            size: Some("large".to_owned()),
            ..Item::new(
                "c",
                "sr.cfg",
                Used {
                    disk_byte_seconds: 0,
                    ..used
                },
            )
        },
    ];
    let got = invoice("shop", month, &list, &items);
    let lines: Vec<(&str, &str, &str, &str)> = got
        .lines
        .iter()
        .map(|l| {
            (
                l.instance.as_str(),
                l.resource.as_str(),
                l.quantity.as_str(),
                l.amount.as_str(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("a", "partition-hours", "730", "7.30"),
            ("a", "disk-gib-months", "3", "0.30"),
            ("a", "size-hours (small)", "730", "14.60"),
            ("b", "partition-hours", "730", "36.50"),
            ("b", "disk-gib-months", "3", "0.30"),
            ("c", "partition-hours", "730", "7.30"),
        ]
    );
    assert_eq!(got.total, "66.30");
    // What is parsed is written back.
    assert_eq!(PriceList::parse(&list.to_api()).expect("reads back"), list);
    let bad = api::Prices {
        size_hour: [("small".to_owned(), "-1".to_owned())].into(),
        ..list.to_api()
    };
    let error = PriceList::parse(&bad).expect_err("negative").to_string();
    assert!(error.contains("size_hour.small"), "{error}");
}

proptest::proptest! {
    /// The total is the sum of the lines, whatever the use.
    #[test]
    fn the_total_is_the_sum_of_the_lines(
        uses in proptest::collection::vec((0i64..10_000_000, 0i64..1_000_000_000, 0i64..1_000_000_000_000), 0..20)
    ) {
        let used: Vec<Item> = uses
            .iter()
            .enumerate()
            .map(|(i, &(p, c, m))| Item::new(&format!("i{i}"), "sr", Used { partition_seconds: p, cpu_ms: c, memory_byte_seconds: m, disk_byte_seconds: m }))
            .collect();
        let got = invoice("p", Month { year: 2026, month: 11 }, &prices("0.013", "0.0417", "0.0051"), &used);
        let sum: Decimal = got.lines.iter().map(|l| l.amount.parse::<Decimal>().expect("decimal")).sum();
        proptest::prop_assert_eq!(format!("{sum:.2}"), got.total);
    }
}
