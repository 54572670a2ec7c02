//! Timestamps as the ostree CLI reads and prints them, over jiff: dates in (`--timestamp`,
//! `--keep-younger-than`) as GNU `date -d` reads the common forms, and out as
//! `YYYY-MM-DD HH:MM:SS +0000` (`show`, `log`) or `YYYY-MM-DDTHH:MM:SS+00` (`summary --view`).

use jiff::{civil, tz::TimeZone, Span, Timestamp, Zoned};

/// Parse what ostree's `parse_datetime` takes for `commit --timestamp`: `@SECONDS`, an ISO
/// 8601 / RFC 3339 instant (`2020-01-01T00:00:00Z`, `…+02:00`), a date and time or a date
/// without a zone (read in the local time zone, as ostree), or a relative date (`now`,
/// `today`, `yesterday`, `3 days ago`). Impossible dates (`2021-02-31`, `25:00`) and bare
/// numbers are refused, with ostree's message.
pub fn parse(s: &str) -> Result<u64, String> {
    parse_at(s, Timestamp::now())
}

fn parse_at(s: &str, now: Timestamp) -> Result<u64, String> {
    let bad = || format!("Could not parse '{s}'");
    let t = s.trim();
    if let Some(n) = t.strip_prefix('@') {
        return n.parse::<u64>().map_err(|_| bad());
    }
    let secs = |ts: Timestamp| u64::try_from(ts.as_second()).map_err(|_| bad());
    if let Ok(ts) = t.parse::<Timestamp>() {
        return secs(ts);
    }
    if let Ok(z) = t.parse::<Zoned>() {
        return secs(z.timestamp());
    }
    let tz = TimeZone::system();
    if let Ok(dt) = t.parse::<civil::DateTime>() {
        return secs(dt.to_zoned(tz).map_err(|_| bad())?.timestamp());
    }
    if let Ok(d) = t.parse::<civil::Date>() {
        return secs(d.to_zoned(tz).map_err(|_| bad())?.timestamp());
    }
    let today = || now.to_zoned(tz.clone()).start_of_day().map_err(|_| bad());
    match t.to_ascii_lowercase().as_str() {
        "now" => return secs(now),
        "today" => return secs(today()?.timestamp()),
        "yesterday" => {
            return secs(
                today()?
                    .checked_sub(Span::new().days(1))
                    .map_err(|_| bad())?
                    .timestamp(),
            )
        }
        _ => {}
    }
    // "3 days ago", "1 week ago", "2 hours": jiff's friendly duration format (months and
    // years are calendar units, counted from now in the local time zone).
    if let Ok(span) = t.parse::<Span>() {
        let z = now.to_zoned(tz);
        let then = z.checked_add(span).map_err(|_| bad())?;
        return secs(then.timestamp());
    }
    Err(bad())
}

/// Parse a `--keep-younger-than` date: any date [`parse`] takes.
pub fn parse_relative(s: &str, now: u64) -> Result<u64, String> {
    let now =
        Timestamp::from_second(i64::try_from(now).unwrap_or(i64::MAX)).unwrap_or(Timestamp::MAX);
    parse_at(s, now)
}

fn utc(t: u64) -> Zoned {
    Timestamp::from_second(i64::try_from(t).unwrap_or(i64::MAX))
        .unwrap_or(Timestamp::MAX)
        .to_zoned(TimeZone::UTC)
}

/// `2020-01-02 00:00:00 +0000`, as `ostree show` prints commit dates.
pub fn format(t: u64) -> String {
    utc(t).strftime("%Y-%m-%d %H:%M:%S +0000").to_string()
}

/// `Thu Jan \u{2007}2 00:00:00 2020` in the local time zone: GLib's `%c` in the C locale,
/// as ostree prints when a signature was made (GLib pads the day with a figure space).
pub fn ctime_local(t: u64) -> String {
    let z = Timestamp::from_second(i64::try_from(t).unwrap_or(i64::MAX))
        .unwrap_or(Timestamp::MAX)
        .to_zoned(TimeZone::system());
    format!(
        "{} {:\u{2007}>2} {}",
        z.strftime("%a %b"),
        z.day(),
        z.strftime("%H:%M:%S %Y")
    )
}

/// `2020-01-02T00:00:00+00`, as ostree prints summary timestamps (GLib's `%FT%T%:::z`).
pub fn iso8601(t: u64) -> String {
    utc(t).strftime("%Y-%m-%dT%H:%M:%S+00").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso() {
        assert_eq!(parse("2020-01-01T00:00:00Z"), Ok(1577836800));
        assert_eq!(parse("2020-01-01T02:00:00+02:00"), Ok(1577836800));
        assert_eq!(parse("2020-01-01 02:00:00+02:00"), Ok(1577836800));
        assert_eq!(parse("@1577836800"), Ok(1577836800));
        assert_eq!(format(1577923200), "2020-01-02 00:00:00 +0000");
        assert_eq!(iso8601(1577923200), "2020-01-02T00:00:00+00");
        for bad in [
            "yesterdayish",
            "1577836800",
            "2021-02-31T00:00:00Z",
            "2020-01-01T25:00:00Z",
            "garbage",
            "",
        ] {
            assert_eq!(parse(bad), Err(format!("Could not parse '{bad}'")), "{bad}");
        }
        assert_eq!(
            parse_relative("2 days ago", 1_000_000),
            Ok(1_000_000 - 172800)
        );
        assert_eq!(
            parse_relative("1 week ago", 1_000_000),
            Ok(1_000_000 - 7 * 86400)
        );
        assert_eq!(parse_relative("@5", 1_000_000), Ok(5));
    }
}
