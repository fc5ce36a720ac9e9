//! Cron schedules: 5-field, 6-field (leading seconds) or `@daily`-style, read in
//! a time zone. Pure: no clock is read here.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

/// What a cron variable accepts, for error messages.
pub const ACCEPTED: &str = "a 5-field cron expression (\"0 2 * * *\"), 6 fields with leading seconds (\"0 30 2 * * *\"), ranges/steps/lists (\"0 1-5/2 * * mon-fri\"), or @hourly/@daily/@weekly/@monthly/@yearly";

/// A parsed cron schedule.
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?})", self.expr)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Self) -> bool {
        self.expr == other.expr
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.expr)
    }
}

impl FromStr for Schedule {
    type Err = String;

    /// Parses a schedule; the error says what is wrong (not what is accepted).
    fn from_str(s: &str) -> Result<Self, String> {
        let expr = s.trim();
        if expr.is_empty() {
            return Err("empty expression".into());
        }
        if !expr.starts_with('@') {
            let fields = expr.split_whitespace().count();
            if !(5..=6).contains(&fields) {
                return Err(format!("{fields} fields"));
            }
            // croner reads "," or "1,,2" as a list with nothing in it: a field
            // that matches nothing, and a search for the next run that takes
            // minutes (found by the cron fuzz target).
            if let Some(field) = expr
                .split_whitespace()
                .find(|f| f.split(',').any(str::is_empty))
            {
                return Err(format!("an empty item in the list {field:?}"));
            }
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .build();
        let cron = parser.parse(expr).map_err(|e| e.to_string())?;
        // One that never matches ("0 0 31 2 *") would leave the daemon with no
        // next run: refused here, with no clock read (from a fixed date).
        let from = DateTime::<Utc>::UNIX_EPOCH;
        if cron.find_next_occurrence(&from, false).is_err() {
            return Err("it matches no date (like 31 February)".into());
        }
        Ok(Schedule {
            expr: expr.to_string(),
            cron,
        })
    }
}

impl Schedule {
    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The first time strictly after `after` that matches, read in `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz);
        self.cron
            .find_next_occurrence(&local, false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn next(expr: &str, after: &str, tz: Tz) -> String {
        let s: Schedule = expr.parse().unwrap();
        let after = DateTime::parse_from_rfc3339(after)
            .unwrap()
            .with_timezone(&Utc);
        s.next_after(after, tz).unwrap().to_rfc3339()
    }

    #[test]
    fn five_and_six_fields() {
        assert_eq!(
            next("0 2 * * *", "2026-01-01T03:00:00Z", Tz::UTC),
            "2026-01-02T02:00:00+00:00"
        );
        assert_eq!(
            next("30 0 2 * * *", "2026-01-01T03:00:00Z", Tz::UTC),
            "2026-01-02T02:00:30+00:00"
        );
    }

    #[test]
    fn ranges_steps_lists_and_nicknames() {
        assert_eq!(
            next("0 1-5/2 * * mon-fri", "2026-01-03T00:00:00Z", Tz::UTC), // a Saturday
            "2026-01-05T01:00:00+00:00"
        );
        assert_eq!(
            next("15,45 * * * *", "2026-01-01T00:20:00Z", Tz::UTC),
            "2026-01-01T00:45:00+00:00"
        );
        assert_eq!(
            next("@daily", "2026-01-01T00:20:00Z", Tz::UTC),
            "2026-01-02T00:00:00+00:00"
        );
    }

    #[test]
    fn read_in_time_zone() {
        // 02:00 in Berlin in winter is 01:00 UTC.
        assert_eq!(
            next(
                "0 2 * * *",
                "2026-01-01T03:00:00Z",
                chrono_tz::Europe::Berlin
            ),
            "2026-01-02T01:00:00+00:00"
        );
    }

    #[test]
    fn spring_forward_runs_once() {
        // 2026-03-29: Berlin jumps from 02:00 to 03:00; 02:30 does not exist that night.
        let s: Schedule = "30 2 * * *".parse().unwrap();
        let tz = chrono_tz::Europe::Berlin;
        let start = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
        let mut runs = vec![];
        let mut t = start;
        while let Some(n) = s.next_after(t, tz) {
            if n > Utc.with_ymd_and_hms(2026, 3, 31, 0, 0, 0).unwrap() {
                break;
            }
            runs.push(n);
            t = n;
        }
        let days: Vec<_> = runs
            .iter()
            .map(|r| r.with_timezone(&tz).date_naive())
            .collect();
        let mut dedup = days.clone();
        dedup.dedup();
        assert_eq!(days, dedup, "no day runs twice: {runs:?}");
        assert!(runs.len() >= 2, "{runs:?}");
    }

    #[test]
    fn rejects_bad_expressions() {
        for bad in [
            "",
            "* * * *",
            "0 0 2 * * * 2026",
            "61 * * * *",
            "@sometimes",
            "a b c d e",
        ] {
            assert!(
                bad.parse::<Schedule>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn empty_list_items_and_impossible_dates_are_refused() {
        for (expr, why) in [
            (", * * * *", "an empty item in the list \",\""),
            ("0 3 , * * *", "an empty item in the list \",\""),
            ("0 3 1,,2 * *", "an empty item in the list \"1,,2\""),
            ("0 3 1, * *", "an empty item in the list \"1,\""),
            ("0 0 31 2 *", "it matches no date (like 31 February)"),
        ] {
            assert_eq!(expr.parse::<Schedule>().unwrap_err(), why, "{expr}");
        }
        // A leap day matches, every fourth year.
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00Z", Tz::UTC),
            "2028-02-29T00:00:00+00:00"
        );
    }
}
