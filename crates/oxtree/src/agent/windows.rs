//! Weekly maintenance windows for the `periodic` strategy, in Zincati's TOML syntax:
//!
//! ```toml
//! [updates.periodic]
//! time_zone = "Europe/Berlin"      # IANA name, "localtime", default UTC
//! [[updates.periodic.window]]
//! days = ["Sat", "Sun"]            # 3-letter or full names
//! start_time = "23:30"
//! length_minutes = 60
//! ```
//!
//! How DST is handled (Zincati keeps minutes since Monday 00:00 in local time, so a window
//! in a skipped hour never opens and one in a repeated hour opens twice): a window opens at
//! its local start time on its day and stays open for `length_minutes` of real time. A
//! start time that does not exist (spring forward) opens at the same offset after the gap
//! (02:30 becomes 03:30); one that exists twice (fall back) opens at the first. So every
//! window opens exactly once a week and is exactly as long as configured. Time zones come
//! from the system's tz database (/usr/share/zoneinfo) through jiff.

use crate::error::{Error, Result};
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeriodicConfig {
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default)]
    pub window: Vec<WindowConfig>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowConfig {
    pub days: Vec<String>,
    pub start_time: String,
    pub length_minutes: u32,
}

#[derive(Debug, Clone, PartialEq)]
struct Window {
    day: Weekday,
    start: Time,
    minutes: u32,
}

/// The parsed windows and their time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    tz: TimeZone,
    tz_name: String,
    windows: Vec<Window>,
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s.to_ascii_lowercase().as_str() {
        "mon" | "monday" => Weekday::Monday,
        "tue" | "tuesday" => Weekday::Tuesday,
        "wed" | "wednesday" => Weekday::Wednesday,
        "thu" | "thursday" => Weekday::Thursday,
        "fri" | "friday" => Weekday::Friday,
        "sat" | "saturday" => Weekday::Saturday,
        "sun" | "sunday" => Weekday::Sunday,
        _ => return None,
    })
}

/// A week; longer windows are a configuration mistake (always open).
const MAX_MINUTES: u32 = 7 * 24 * 60;

impl Schedule {
    pub fn parse(c: &PeriodicConfig) -> Result<Schedule> {
        let bad = |m: String| Error::InvalidArgument(format!("[updates.periodic]: {m}"));
        let tz_name = c.time_zone.clone().unwrap_or_else(|| "UTC".into());
        let tz = if tz_name == "localtime" {
            TimeZone::system()
        } else {
            TimeZone::get(&tz_name).map_err(|e| {
                bad(format!(
                    "time zone {tz_name:?}: {e} (is the tz database installed in /usr/share/zoneinfo?)"
                ))
            })?
        };
        if c.window.is_empty() {
            return Err(bad(
                "the periodic strategy needs at least one [[updates.periodic.window]]".into(),
            ));
        }
        let mut windows = Vec::new();
        for w in &c.window {
            let start: Time = w
                .start_time
                .parse()
                .ok()
                .filter(|_| w.start_time.len() == 5)
                .ok_or_else(|| bad(format!("start_time {:?}: expected HH:MM", w.start_time)))?;
            if w.length_minutes == 0 || w.length_minutes > MAX_MINUTES {
                return Err(bad(format!(
                    "length_minutes {} must be between 1 and {MAX_MINUTES}",
                    w.length_minutes
                )));
            }
            if w.days.is_empty() {
                return Err(bad("a window needs at least one day".into()));
            }
            for d in &w.days {
                let day = weekday(d)
                    .ok_or_else(|| bad(format!("day {d:?}: expected Mon…Sun or Monday…Sunday")))?;
                windows.push(Window {
                    day,
                    start,
                    minutes: w.length_minutes,
                });
            }
        }
        Ok(Schedule {
            tz,
            tz_name,
            windows,
        })
    }

    pub fn time_zone(&self) -> &str {
        &self.tz_name
    }

    /// Total minutes of windows per week (Zincati's `periodic_schedule_length_minutes`).
    pub fn length_minutes(&self) -> u64 {
        self.windows.iter().map(|w| u64::from(w.minutes)).sum()
    }

    /// The instants each window opens and closes around `t`: starts on the local dates
    /// from a week before `t`'s to a week after.
    fn occurrences(&self, t: Timestamp) -> Vec<(Timestamp, Timestamp)> {
        let today = t.to_zoned(self.tz.clone()).date();
        let mut out = Vec::new();
        for back in -8i64..=8 {
            let Ok(date) = today.checked_add(back.days()) else {
                continue;
            };
            for w in self.windows.iter().filter(|w| w.day == date.weekday()) {
                // "compatible" disambiguation: a gap moves forward, a fold takes the first.
                let Ok(start) = date.to_datetime(w.start).to_zoned(self.tz.clone()) else {
                    continue;
                };
                let start = start.timestamp();
                let Ok(end) = start.checked_add(SignedDuration::from_mins(i64::from(w.minutes)))
                else {
                    continue;
                };
                out.push((start, end));
            }
        }
        out
    }

    /// Is a reboot allowed at `t`?
    pub fn allows(&self, t: Timestamp) -> bool {
        self.occurrences(t).iter().any(|(s, e)| *s <= t && t < *e)
    }

    /// When the next window opens after `t` (for status and the MOTD).
    pub fn next_open(&self, t: Timestamp) -> Option<Timestamp> {
        self.occurrences(t)
            .into_iter()
            .map(|(s, _)| s)
            .filter(|s| *s > t)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched(tz: &str, windows: &[(&[&str], &str, u32)]) -> Schedule {
        Schedule::parse(&PeriodicConfig {
            time_zone: Some(tz.into()),
            window: windows
                .iter()
                .map(|(d, s, l)| WindowConfig {
                    days: d.iter().map(|x| x.to_string()).collect(),
                    start_time: s.to_string(),
                    length_minutes: *l,
                })
                .collect(),
        })
        .expect("valid schedule")
    }

    fn at(s: &str) -> Timestamp {
        s.parse().expect("timestamp")
    }

    /// Europe/Berlin: spring forward Sun 2026-03-29 02:00 CET → 03:00 CEST (01:00 UTC);
    /// fall back Sun 2026-10-25 03:00 CEST → 02:00 CET (01:00 UTC).
    #[test]
    fn windows_across_both_dst_transitions_in_berlin() {
        let tz = TimeZone::get("Europe/Berlin")
            .expect("Europe/Berlin from the system tz database (/usr/share/zoneinfo; Debian package tzdata)");
        // The transitions are where the table assumes.
        assert_eq!(
            at("2026-03-29T00:59:59Z")
                .to_zoned(tz.clone())
                .offset()
                .seconds(),
            3600
        );
        assert_eq!(
            at("2026-03-29T01:00:00Z")
                .to_zoned(tz.clone())
                .offset()
                .seconds(),
            7200
        );
        assert_eq!(
            at("2026-10-25T00:59:59Z")
                .to_zoned(tz.clone())
                .offset()
                .seconds(),
            7200
        );
        assert_eq!(
            at("2026-10-25T01:00:00Z")
                .to_zoned(tz.clone())
                .offset()
                .seconds(),
            3600
        );
        let s = sched(
            "Europe/Berlin",
            &[
                (&["Sun"], "02:30", 60),     // in the skipped / repeated hour
                (&["Sat"], "23:30", 60),     // crosses midnight into Sunday
                (&["Sunday"], "01:30", 120), // spans the transition
                (&["Mon", "Wed", "Fri"], "12:00", 30),
            ],
        );
        let table: &[(&str, bool, &str)] = &[
            // Spring forward. 02:30 does not exist: the window opens at 03:30 CEST (01:30
            // UTC) for 60 real minutes.
            (
                "2026-03-29T01:29:59Z",
                true,
                "01:30 CET window still open (03:29 CEST)",
            ),
            (
                "2026-03-29T01:30:00Z",
                true,
                "03:30 CEST: the 02:30 window opens",
            ),
            ("2026-03-29T02:29:59Z", true, "04:29:59 CEST: still open"),
            (
                "2026-03-29T02:30:00Z",
                false,
                "04:30 CEST: 60 real minutes are up",
            ),
            // The 01:30 window (120 min) opens at 01:30 CET = 00:30 UTC, ends 02:30 UTC.
            (
                "2026-03-29T00:29:59Z",
                false,
                "01:29:59 CET: between the Saturday and the 01:30 windows",
            ),
            (
                "2026-03-28T22:29:59Z",
                false,
                "Sat 23:29:59 CET: before the Saturday window",
            ),
            ("2026-03-28T22:30:00Z", true, "Sat 23:30 CET"),
            (
                "2026-03-28T23:29:59Z",
                true,
                "Sun 00:29:59 CET: across midnight",
            ),
            ("2026-03-28T23:30:00Z", false, "Sun 00:30 CET: closed"),
            (
                "2026-03-29T00:30:00Z",
                true,
                "Sun 01:30 CET: the 120-minute window",
            ),
            // Fall back. 02:30 exists twice: the window opens at the first (CEST, 00:30
            // UTC) and closes 60 real minutes later, at the second 02:30 (CET, 01:30 UTC).
            (
                "2026-10-25T00:29:59Z",
                true,
                "02:29:59 CEST: 01:30 window (120 min from 23:30 UTC)",
            ),
            (
                "2026-10-24T23:29:59Z",
                false,
                "01:29:59 CEST: before the 01:30 window",
            ),
            (
                "2026-10-24T23:30:00Z",
                true,
                "01:30 CEST: the 120-minute window opens",
            ),
            (
                "2026-10-25T01:29:59Z",
                true,
                "02:29:59 CET: both windows open",
            ),
            (
                "2026-10-25T01:30:00Z",
                false,
                "the second 02:30 (CET): both closed",
            ),
            ("2026-10-25T02:00:00Z", false, "03:00 CET"),
            // A plain weekday, CET and CEST.
            ("2026-03-30T10:00:00Z", true, "Mon 12:00 CEST"),
            ("2026-03-30T11:00:00Z", false, "Mon 13:00 CEST"),
            ("2026-03-27T11:15:00Z", true, "Fri 12:15 CET"),
            ("2026-03-27T10:15:00Z", false, "Fri 11:15 CET"),
            ("2026-03-31T10:15:00Z", false, "Tue: no window"),
        ];
        for (t, want, why) in table {
            assert_eq!(s.allows(at(t)), *want, "{t}: {why}");
        }
        assert_eq!(
            s.next_open(at("2026-03-29T01:00:00Z")),
            Some(at("2026-03-29T01:30:00Z")),
            "the window in the gap opens after it"
        );
    }

    #[test]
    fn week_wrap_utc_default_and_errors() {
        let s = Schedule::parse(&PeriodicConfig {
            time_zone: None,
            window: vec![WindowConfig {
                days: vec!["Sun".into()],
                start_time: "23:30".into(),
                length_minutes: 60,
            }],
        })
        .expect("valid");
        assert_eq!(s.time_zone(), "UTC");
        assert!(s.allows(at("2026-12-06T23:45:00Z")), "Sunday 23:45");
        assert!(
            s.allows(at("2026-12-07T00:15:00Z")),
            "Monday 00:15: wrapped the week"
        );
        assert!(!s.allows(at("2026-12-07T00:30:00Z")));
        assert_eq!(s.length_minutes(), 60);
        let bad = |days: &[&str], start: &str, len: u32, tz: Option<&str>| {
            Schedule::parse(&PeriodicConfig {
                time_zone: tz.map(str::to_string),
                window: vec![WindowConfig {
                    days: days.iter().map(|d| d.to_string()).collect(),
                    start_time: start.into(),
                    length_minutes: len,
                }],
            })
            .expect_err("invalid")
            .to_string()
        };
        assert!(bad(&["Funday"], "10:00", 5, None).contains("Funday"));
        assert!(bad(&["Mon"], "25:00", 5, None).contains("25:00"));
        assert!(bad(&["Mon"], "10:00", 0, None).contains("length_minutes"));
        assert!(bad(&["Mon"], "10:00", 5, Some("Mars/Olympus")).contains("Mars/Olympus"));
        assert!(Schedule::parse(&PeriodicConfig::default()).is_err());
    }
}
