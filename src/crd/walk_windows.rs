//! `spec.walkWindows`: the times of day, in a named IANA time zone, when full roster walks may
//! run (for example nights and weekends). Outside them only new or changed EpicPractitioners
//! are resolved and written; drift made in Epic waits for the next window.

use std::time::Duration;

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// When full roster walks may run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalkWindows {
    /// IANA time zone the ranges are in, for example America/Chicago (daylight saving time
    /// applies as the zone says).
    pub time_zone: String,
    /// The ranges; a walk may start inside any of them (one that starts inside finishes even
    /// when the range ends first).
    #[schemars(length(min = 1, max = 50))]
    pub ranges: Vec<WalkWindow>,
}

/// One range of time of day.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WalkWindow {
    /// Days the range starts on. Absent or empty: every day.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub days: Vec<Day>,
    /// Start, HH:MM (24-hour clock).
    #[schemars(regex(pattern = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"))]
    pub start: String,
    /// End, HH:MM; 24:00 is midnight at the end of the day. An end at or before the start
    /// runs past midnight (22:00-06:00).
    #[schemars(regex(pattern = r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$"))]
    pub end: String,
}

/// A day of the week.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    fn weekday(self) -> Weekday {
        match self {
            Day::Mon => Weekday::Monday,
            Day::Tue => Weekday::Tuesday,
            Day::Wed => Weekday::Wednesday,
            Day::Thu => Weekday::Thursday,
            Day::Fri => Weekday::Friday,
            Day::Sat => Weekday::Saturday,
            Day::Sun => Weekday::Sunday,
        }
    }
}

/// The windows, checked: a known zone and valid times.
#[derive(Clone, Debug)]
pub struct Windows {
    tz: TimeZone,
    /// (days, start minute of day, length in minutes).
    ranges: Vec<(Vec<Weekday>, i64, i64)>,
    zone: String,
}

fn minutes(field: &str, text: &str, allow_24: bool) -> Result<i64, String> {
    let bad = || {
        format!("walkWindows {field} {text:?} is not a time of day: write HH:MM, for example 22:00")
    };
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h == 24 && m == 0 && allow_24 {
        return Ok(1440);
    }
    if !(0..24).contains(&h) || !(0..60).contains(&m) || h.to_string().len() > 2 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

impl WalkWindows {
    /// The windows checked, or a sentence naming the field and the fix.
    pub fn checked(&self) -> Result<Windows, String> {
        let tz = TimeZone::get(&self.time_zone).map_err(|_| {
            format!(
                "walkWindows.timeZone {:?} is not an IANA time zone: use a name such as America/Chicago or Europe/London",
                self.time_zone
            )
        })?;
        if self.ranges.is_empty() {
            return Err("walkWindows.ranges is empty: give at least one range, for example start 22:00, end 06:00".into());
        }
        let mut ranges = Vec::new();
        for r in &self.ranges {
            let start = minutes("start", &r.start, false)?;
            let end = minutes("end", &r.end, true)?;
            let len = if end > start {
                end - start
            } else {
                end + 1440 - start
            };
            ranges.push((r.days.iter().map(|d| d.weekday()).collect(), start, len));
        }
        Ok(Windows {
            tz,
            ranges,
            zone: self.time_zone.clone(),
        })
    }
}

impl Windows {
    /// Every opening (start, end) whose start falls on `from` - 1 day ..= `from` + 7 days.
    fn openings(&self, from: Date) -> Vec<(Timestamp, Timestamp)> {
        let mut out = Vec::new();
        let Ok(mut day) = from.yesterday() else {
            return out;
        };
        for _ in 0..9 {
            for (days, start, len) in &self.ranges {
                if !days.is_empty() && !days.contains(&day.weekday()) {
                    continue;
                }
                let (h, m) = (start / 60, start % 60);
                let Ok(begin) = day
                    .at(h as i8, m as i8, 0, 0)
                    .to_zoned(self.tz.clone())
                    .map(|z| z.timestamp())
                else {
                    continue;
                };
                if let Ok(end) = begin.checked_add(SignedDuration::from_mins(*len)) {
                    out.push((begin, end));
                }
            }
            match day.tomorrow() {
                Ok(d) => day = d,
                Err(_) => break,
            }
        }
        out
    }

    /// Whether a walk may start at `at`; else when the next window opens (within a week).
    pub fn next_open(&self, at: Timestamp) -> Option<Timestamp> {
        let today = at.to_zoned(self.tz.clone()).date();
        self.openings(today)
            .into_iter()
            .filter(|(_, end)| *end > at)
            .map(|(begin, _)| begin.max(at))
            .min()
    }

    pub fn is_open(&self, at: Timestamp) -> bool {
        self.next_open(at) == Some(at)
    }

    /// The longest stretch in the coming week with no window open: how long drift made in
    /// Epic can wait to be noticed, at worst.
    pub fn longest_gap(&self, at: Timestamp) -> Duration {
        let today = at.to_zoned(self.tz.clone()).date();
        let mut openings = self.openings(today);
        openings.sort();
        let mut longest = SignedDuration::ZERO;
        let mut covered_until: Option<Timestamp> = None;
        for (begin, end) in openings {
            if let Some(until) = covered_until
                && begin > until
            {
                longest = longest.max(begin.duration_since(until));
            }
            covered_until = Some(covered_until.map_or(end, |u| u.max(end)));
        }
        Duration::try_from(longest).unwrap_or_default()
    }

    pub fn zone(&self) -> &str {
        &self.zone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(zone: &str, ranges: &[(&[Day], &str, &str)]) -> Result<Windows, String> {
        WalkWindows {
            time_zone: zone.into(),
            ranges: ranges
                .iter()
                .map(|(d, s, e)| WalkWindow {
                    days: d.to_vec(),
                    start: s.to_string(),
                    end: e.to_string(),
                })
                .collect(),
        }
        .checked()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn nights_in_a_named_zone_wrap_past_midnight_and_follow_daylight_saving() {
        let w = windows("America/Chicago", &[(&[], "22:00", "06:00")]).unwrap();
        // 2026-07-01 is in CDT (UTC-5): 22:00 local is 03:00Z.
        assert!(w.is_open(ts("2026-07-01T03:30:00Z")));
        assert!(w.is_open(ts("2026-07-01T10:59:00Z")));
        assert!(!w.is_open(ts("2026-07-01T11:00:00Z")));
        assert_eq!(
            w.next_open(ts("2026-07-01T15:00:00Z")),
            Some(ts("2026-07-02T03:00:00Z"))
        );
        // In January (CST, UTC-6) the same local time is an hour later in UTC.
        assert_eq!(
            w.next_open(ts("2026-01-15T15:00:00Z")),
            Some(ts("2026-01-16T04:00:00Z"))
        );
        assert_eq!(
            w.longest_gap(ts("2026-07-01T15:00:00Z")),
            Duration::from_secs(16 * 3600)
        );
    }

    #[test]
    fn weekend_days_and_whole_days() {
        let w = windows(
            "Europe/London",
            &[
                (&[Day::Sat, Day::Sun], "00:00", "24:00"),
                (&[], "01:00", "05:00"),
            ],
        )
        .unwrap();
        // Friday 2026-12-04 12:00 UTC (GMT): next is the weekend range at Saturday 00:00.
        assert_eq!(
            w.next_open(ts("2026-12-04T12:00:00Z")),
            Some(ts("2026-12-05T00:00:00Z"))
        );
        assert!(w.is_open(ts("2026-12-06T23:59:00Z")), "all of Sunday");
        assert!(
            !w.is_open(ts("2026-12-07T00:30:00Z")),
            "Monday before 01:00"
        );
    }

    #[test]
    fn bad_windows_say_what_to_write() {
        for (zone, start, end, want) in [
            ("Mars/Olympus", "22:00", "06:00", "IANA"),
            ("UTC", "25:00", "06:00", "HH:MM"),
            ("UTC", "22:00", "6", "HH:MM"),
            ("UTC", "24:00", "06:00", "HH:MM"),
        ] {
            let e = windows(zone, &[(&[], start, end)]).unwrap_err();
            assert!(e.contains(want), "{zone} {start}-{end}: {e}");
        }
        assert!(windows("UTC", &[]).unwrap_err().contains("ranges"));
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_a_window_or_an_error_and_open_windows_open_within_a_day(
            start in "\\PC{0,8}",
            end in "\\PC{0,8}",
            h in 0u32..24, m in 0u32..60, len in 1u32..1440,
            secs in 0i64..4_000_000_000,
        ) {
            let _ = windows("UTC", &[(&[], &start, &end)]);
            let from = format!("{h:02}:{m:02}");
            let to_min = (h * 60 + m + len) % 1440;
            let to = format!("{:02}:{:02}", to_min / 60, to_min % 60);
            let w = windows("Europe/Berlin", &[(&[], &from, &to)]).unwrap();
            let at = Timestamp::from_second(secs).unwrap();
            let next = w.next_open(at).unwrap();
            proptest::prop_assert!(next >= at);
            proptest::prop_assert!(next.duration_since(at) <= SignedDuration::from_hours(25));
        }
    }
}
