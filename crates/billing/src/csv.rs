//! An invoice as CSV (RFC 4180): one line per invoice line, then the total. The CLI's
//! `grove billing invoice --csv` and the console's download print the same text.

use grove_api::Invoice;

/// The header, the lines and a last `total` line, each ended by CRLF as RFC 4180 says.
pub fn invoice_csv(invoice: &Invoice) -> String {
    let mut out = String::from("instance,resource,quantity,unit_price,amount\r\n");
    for l in &invoice.lines {
        let fields = [
            &l.instance,
            &l.resource,
            &l.quantity,
            &l.unit_price,
            &l.amount,
        ]
        .map(|t| field(t));
        out.push_str(&fields.join(","));
        out.push_str("\r\n");
    }
    out.push_str(&format!("total,,,,{}\r\n", field(&invoice.total)));
    out
}

/// A field quoted when it holds a separator, a quote or a line break. A field starting
/// with `=`, `+`, `-` or `@` is prefixed with a quote so that spreadsheets do not take an
/// instance title for a formula.
fn field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '@'])
        || (text.starts_with('-') && text.parse::<f64>().is_err())
    {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use grove_api::InvoiceLine;

    use super::*;

    #[test]
    fn fields_are_quoted_and_formulas_defused() {
        let line = |instance: &str| InvoiceLine {
            instance: instance.to_owned(),
            resource: "partition-hours".to_owned(),
            quantity: "1.000000".to_owned(),
            unit_price: "0.01".to_owned(),
            amount: "0.01".to_owned(),
        };
        let invoice = Invoice {
            project: "p".to_owned(),
            month: "2026-11".to_owned(),
            currency: "EUR".to_owned(),
            lines: vec![line("web"), line("a,\"b\""), line("=cmd()"), line("-1")],
            total: "0.04".to_owned(),
        };
        assert_eq!(
            invoice_csv(&invoice),
            "instance,resource,quantity,unit_price,amount\r\n\
             web,partition-hours,1.000000,0.01,0.01\r\n\
             \"a,\"\"b\"\"\",partition-hours,1.000000,0.01,0.01\r\n\
             '=cmd(),partition-hours,1.000000,0.01,0.01\r\n\
             -1,partition-hours,1.000000,0.01,0.01\r\n\
             total,,,,0.04\r\n"
        );
    }
}
