//! Timestamps as the ostree CLI reads and prints them: ISO 8601 in, `YYYY-MM-DD HH:MM:SS +0000` out.

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719468;
    let era = if z >= 0 { z } else { z - 146096 } / 146097;
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Parse `2020-01-01T00:00:00Z`, `2020-01-01 00:00:00+02:00`, `2020-01-01`, `@SECONDS` or
/// plain seconds since the epoch.
pub fn parse(s: &str) -> Result<u64, String> {
    let bad = || format!("invalid timestamp {s:?}: expected ISO 8601 such as 2020-01-01T00:00:00Z");
    let s = s.trim();
    if let Some(n) = s
        .strip_prefix('@')
        .or(Some(s))
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    {
        return n.parse().map_err(|_| bad());
    }
    let (date, rest) = s.split_at(s.find(['T', ' ']).unwrap_or(s.len()));
    let mut dp = date.split('-');
    let (y, m, d) = match (dp.next(), dp.next(), dp.next(), dp.next()) {
        (Some(y), Some(m), Some(d), None) => (
            y.parse::<i64>().map_err(|_| bad())?,
            m.parse::<u32>().map_err(|_| bad())?,
            d.parse::<u32>().map_err(|_| bad())?,
        ),
        _ => return Err(bad()),
    };
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    let rest = rest.get(1..).unwrap_or("");
    let (time, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let mut secs = 0i64;
    if !time.is_empty() {
        let mut tp = time.split(':');
        let h: i64 = tp.next().unwrap_or("0").parse().map_err(|_| bad())?;
        let mi: i64 = tp.next().unwrap_or("0").parse().map_err(|_| bad())?;
        let se: f64 = tp.next().unwrap_or("0").parse().map_err(|_| bad())?;
        secs = h * 3600 + mi * 60 + se as i64;
    }
    let off = match offset {
        "" | "Z" | "z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let digits: String = o[1..].chars().filter(char::is_ascii_digit).collect();
            if digits.len() != 4 && digits.len() != 2 {
                return Err(bad());
            }
            let h: i64 = digits[..2].parse().map_err(|_| bad())?;
            let mi: i64 = digits.get(2..4).unwrap_or("0").parse().map_err(|_| bad())?;
            sign * (h * 3600 + mi * 60)
        }
    };
    let t = days_from_civil(y, m, d) * 86400 + secs - off;
    u64::try_from(t).map_err(|_| bad())
}

/// Parse a `--keep-younger-than` date: a timestamp (see [`parse`]) or `N UNIT ago`.
pub fn parse_relative(s: &str, now: u64) -> Result<u64, String> {
    let words: Vec<&str> = s.split_whitespace().collect();
    if let [n, unit, rest @ ..] = words.as_slice() {
        if rest.is_empty() || rest == ["ago"] {
            if let Ok(n) = n.parse::<u64>() {
                let mult = match unit.trim_end_matches('s') {
                    "second" | "sec" => 1,
                    "minute" | "min" => 60,
                    "hour" => 3600,
                    "day" => 86400,
                    "week" => 7 * 86400,
                    "month" => 30 * 86400,
                    "year" => 365 * 86400,
                    _ => return Err(format!("invalid date {s:?}: unknown unit {unit:?}")),
                };
                return Ok(now.saturating_sub(n * mult));
            }
        }
    }
    parse(s)
}

pub fn format(t: u64) -> String {
    let days = (t / 86400) as i64;
    let secs = t % 86400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} +0000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// `2020-01-02T00:00:00+00`, as ostree prints summary timestamps (GLib's `%FT%T%:::z`).
pub fn iso8601(t: u64) -> String {
    let f = format(t);
    format!("{}T{}+00", &f[..10], &f[11..19])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso() {
        assert_eq!(parse("2020-01-01T00:00:00Z"), Ok(1577836800));
        assert_eq!(parse("2020-01-01T02:00:00+02:00"), Ok(1577836800));
        assert_eq!(parse("1577836800"), Ok(1577836800));
        assert_eq!(format(1577923200), "2020-01-02 00:00:00 +0000");
        assert_eq!(iso8601(1577923200), "2020-01-02T00:00:00+00");
        assert!(parse("yesterday").is_err());
        assert_eq!(
            parse_relative("2 days ago", 1_000_000),
            Ok(1_000_000 - 172800)
        );
    }
}
