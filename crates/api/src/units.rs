//! Quantities as people write them on the command line and in configuration files: bytes
//! with a binary suffix (`512M`, `2G`, `1Ti`, `64KiB`) and CPU cores with up to three
//! decimals (`0.5`, `2`), which the API carries as bytes and thousandths of a core.

/// A quantity that does not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("{0:?} is not a size: a whole number of bytes, or one with K, M, G or T (512M, 2G)")]
    Bytes(String),
    #[error("{0:?} is not a number of cores: a number with up to three decimals (0.5, 2)")]
    Cores(String),
}

/// Bytes from `N`, `NK`, `NM`, `NG`, `NT` (powers of 1024; `Ki`, `KiB` and `KB` read the
/// same).
pub fn parse_bytes(text: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::Bytes(text.to_owned());
    let trimmed = text.trim();
    let digits = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (number, suffix) = trimmed.split_at(digits);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let suffix = suffix.trim_start();
    let unit = suffix
        .strip_suffix("iB")
        .or_else(|| suffix.strip_suffix('i'))
        .or_else(|| suffix.strip_suffix('B').filter(|s| !s.is_empty()))
        .unwrap_or(suffix);
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return Err(bad()),
    };
    number.checked_mul(1 << shift).ok_or_else(bad)
}

/// Thousandths of a core from `2`, `0.5`, `1.25`.
pub fn parse_cores(text: &str) -> Result<u64, UnitError> {
    let bad = || UnitError::Cores(text.to_owned());
    let trimmed = text.trim();
    let (whole, fraction) = trimmed.split_once('.').unwrap_or((trimmed, ""));
    if whole.is_empty() && fraction.is_empty()
        || fraction.len() > 3
        || !whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit())
    {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let mut thousandths = 0;
    for (i, digit) in fraction.chars().enumerate() {
        let exponent = 2 - u32::try_from(i).map_err(|_| bad())?;
        thousandths += u64::from(digit.to_digit(10).ok_or_else(bad)?) * 10u64.pow(exponent);
    }
    whole
        .checked_mul(1000)
        .and_then(|m| m.checked_add(thousandths))
        .ok_or_else(bad)
}

/// Bytes the way [`parse_bytes`] reads them back: the largest unit that divides them.
pub fn format_bytes(bytes: u64) -> String {
    for (shift, unit) in [(40, "T"), (30, "G"), (20, "M"), (10, "K")] {
        if bytes != 0 && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    bytes.to_string()
}

/// Thousandths of a core as cores (`500` is `0.5`).
pub fn format_cores(millicores: u64) -> String {
    let (whole, fraction) = (millicores / 1000, millicores % 1000);
    if fraction == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{fraction:03}")
            .trim_end_matches('0')
            .to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_read_and_print() {
        for (text, bytes) in [
            ("0", 0),
            ("4096", 4096),
            ("64K", 64 << 10),
            ("512M", 512 << 20),
            ("512Mi", 512 << 20),
            ("2G", 2 << 30),
            ("2GiB", 2 << 30),
            ("2 GB", 2 << 30),
            ("1t", 1 << 40),
        ] {
            assert_eq!(parse_bytes(text), Ok(bytes), "{text}");
        }
        for bad in ["", "M", "-1", "1.5G", "2X", "2B", "99999999999T"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
        for bytes in [
            0,
            1000,
            64 << 10,
            512 << 20,
            3 << 30,
            1 << 40,
            (1 << 30) + 1,
        ] {
            assert_eq!(parse_bytes(&format_bytes(bytes)), Ok(bytes), "{bytes}");
        }
        assert_eq!(format_bytes(512 << 20), "512M");
    }

    #[test]
    fn cores_read_and_print() {
        for (text, millicores) in [
            ("2", 2000),
            ("0.5", 500),
            (".25", 250),
            ("1.125", 1125),
            ("3.", 3000),
        ] {
            assert_eq!(parse_cores(text), Ok(millicores), "{text}");
        }
        for bad in ["", ".", "0.0001", "-1", "1,5", "two"] {
            assert!(parse_cores(bad).is_err(), "{bad}");
        }
        for millicores in [0, 1, 250, 500, 1000, 1125, 16_000] {
            assert_eq!(parse_cores(&format_cores(millicores)), Ok(millicores));
        }
        assert_eq!(format_cores(1500), "1.5");
    }
}
