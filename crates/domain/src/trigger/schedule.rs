//! Schedule expressions in the EventBridge forms: `rate(N unit)`,
//! `cron(min hour day-of-month month day-of-week year)` and
//! `at(yyyy-mm-ddThh:mm:ss)`, evaluated in an IANA time zone.

use std::time::Duration;

use chrono::{NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use croner::Cron;

use crate::time::Timestamp;

/// A parsed schedule.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every `Duration`, from the trigger's creation.
    Rate(Duration),
    /// A cron pattern (AWS fields; day-of-week 1–7 = SUN–SAT) and the allowed
    /// years (`None` = every year).
    Cron {
        cron: Box<Cron>,
        years: Option<(i32, i32)>,
    },
    /// Once, at a local date and time.
    At(NaiveDateTime),
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, String> {
        let expr = expr.trim();
        if let Some(inner) = strip_call(expr, "rate") {
            return parse_rate(inner).map(Schedule::Rate);
        }
        if let Some(inner) = strip_call(expr, "cron") {
            return parse_cron(inner);
        }
        if let Some(inner) = strip_call(expr, "at") {
            return NaiveDateTime::parse_from_str(inner.trim(), "%Y-%m-%dT%H:%M:%S")
                .map(Schedule::At)
                .map_err(|_| "at() takes yyyy-mm-ddThh:mm:ss".to_owned());
        }
        Err("expected rate(...), cron(...) or at(...)".into())
    }

    /// The first firing strictly after `after`, given the trigger's start
    /// (for rates) and time zone. `None` when it never fires again.
    pub fn next_after(&self, after: Timestamp, start: Timestamp, tz: Tz) -> Option<Timestamp> {
        match self {
            Schedule::Rate(period) => {
                let period = chrono::Duration::from_std(*period).ok()?;
                if after < start {
                    return Some(start + period);
                }
                let elapsed = (after - start).num_milliseconds();
                let n = elapsed / period.num_milliseconds() + 1;
                Some(start + period * i32::try_from(n).ok()?)
            }
            Schedule::Cron { cron, years } => {
                let mut from = after.with_timezone(&tz);
                for _ in 0..1000 {
                    let next = cron.find_next_occurrence(&from, false).ok()?;
                    let year = chrono::Datelike::year(&next);
                    match years {
                        Some((_, hi)) if year > *hi => return None,
                        Some((lo, _)) if year < *lo => {
                            from = tz.with_ymd_and_hms(*lo, 1, 1, 0, 0, 0).earliest()?
                                - chrono::Duration::seconds(1);
                        }
                        _ => return Some(next.with_timezone(&Utc)),
                    }
                }
                None
            }
            Schedule::At(local) => {
                let at = tz
                    .from_local_datetime(local)
                    .earliest()?
                    .with_timezone(&Utc);
                (at > after).then_some(at)
            }
        }
    }
}

fn strip_call<'a>(expr: &'a str, name: &str) -> Option<&'a str> {
    expr.strip_prefix(name)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
}

fn parse_rate(inner: &str) -> Result<Duration, String> {
    let mut parts = inner.split_whitespace();
    let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("rate() takes a value and a unit, e.g. rate(5 minutes)".into());
    };
    let n: u64 = n
        .parse()
        .map_err(|_| format!("rate value '{n}' is not a positive whole number"))?;
    if n == 0 {
        return Err("rate value must be at least 1".into());
    }
    let secs = match (unit, n == 1) {
        ("minute", true) | ("minutes", false) => 60,
        ("hour", true) | ("hours", false) => 3600,
        ("day", true) | ("days", false) => 86_400,
        ("minute" | "hour" | "day", false) => {
            return Err(format!(
                "rate({n} {unit}): use the plural unit for values above 1"
            ))
        }
        ("minutes" | "hours" | "days", true) => {
            return Err(format!(
                "rate(1 {unit}): use the singular unit for a value of 1"
            ))
        }
        _ => {
            return Err(format!(
                "unknown rate unit '{unit}' (minute(s), hour(s), day(s))"
            ))
        }
    };
    Ok(Duration::from_secs(n * secs))
}

fn parse_cron(inner: &str) -> Result<Schedule, String> {
    let fields: Vec<&str> = inner.split_whitespace().collect();
    if fields.len() != 6 {
        return Err(format!(
            "cron() takes 6 fields (minutes hours day-of-month month day-of-week year), got {}",
            fields.len()
        ));
    }
    let (dom, dow) = (fields[2], fields[4]);
    if (dom == "?") == (dow == "?") {
        return Err("cron(): exactly one of day-of-month and day-of-week must be '?'".into());
    }
    let years = parse_years(fields[5])?;
    let pattern = format!(
        "{} {} {} {} {}",
        fields[0],
        fields[1],
        dom.replace('?', "*"),
        fields[3],
        dow.replace('?', "*")
    );
    let cron = Cron::new(&pattern)
        .with_alternative_weekdays()
        .parse()
        .map_err(|e| format!("cron(): {e}"))?;
    Ok(Schedule::Cron {
        cron: Box::new(cron),
        years,
    })
}

fn parse_years(field: &str) -> Result<Option<(i32, i32)>, String> {
    if field == "*" {
        return Ok(None);
    }
    let bad = || format!("cron(): year field '{field}' must be '*', a year or a range 1970-2199");
    let (lo, hi) = match field.split_once('-') {
        Some((a, b)) => (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?),
        None => {
            let y = field.parse().map_err(|_| bad())?;
            (y, y)
        }
    };
    if !(1970..=2199).contains(&lo) || !(1970..=2199).contains(&hi) || lo > hi {
        return Err(bad());
    }
    Ok(Some((lo, hi)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn rates() {
        assert!(
            matches!(Schedule::parse("rate(5 minutes)"), Ok(Schedule::Rate(d)) if d == Duration::from_secs(300))
        );
        assert!(
            matches!(Schedule::parse("rate(1 day)"), Ok(Schedule::Rate(d)) if d == Duration::from_secs(86_400))
        );
        assert!(Schedule::parse("rate(1 days)").is_err());
        assert!(Schedule::parse("rate(2 hour)").is_err());
        assert!(Schedule::parse("rate(5 weeks)").is_err());
        let s = Schedule::parse("rate(5 minutes)").unwrap();
        let start = utc("2030-01-01T00:00:00Z");
        assert_eq!(
            s.next_after(utc("2030-01-01T00:07:00Z"), start, Tz::UTC),
            Some(utc("2030-01-01T00:10:00Z"))
        );
    }

    #[test]
    fn cron_in_a_time_zone() {
        // 12:00 every day, Paris time (UTC+1 in January).
        let s = Schedule::parse("cron(0 12 * * ? *)").unwrap();
        let next = s.next_after(
            utc("2030-01-01T00:00:00Z"),
            utc("2030-01-01T00:00:00Z"),
            chrono_tz::Europe::Paris,
        );
        assert_eq!(next, Some(utc("2030-01-01T11:00:00Z")));
    }

    #[test]
    fn cron_weekdays_are_sun_to_sat_one_to_seven() {
        // 2030-01-06 is a Sunday; day-of-week 2 is Monday.
        let s = Schedule::parse("cron(0 8 ? * 2 *)").unwrap();
        let next = s.next_after(
            utc("2030-01-05T00:00:00Z"),
            utc("2030-01-01T00:00:00Z"),
            Tz::UTC,
        );
        assert_eq!(next, Some(utc("2030-01-07T08:00:00Z")));
    }

    #[test]
    fn cron_years() {
        let s = Schedule::parse("cron(0 0 1 1 ? 2031)").unwrap();
        let start = utc("2030-01-01T00:00:00Z");
        assert_eq!(
            s.next_after(start, start, Tz::UTC),
            Some(utc("2031-01-01T00:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2031-06-01T00:00:00Z"), start, Tz::UTC),
            None
        );
        assert!(Schedule::parse("cron(0 0 1 1 ? 1800)").is_err());
    }

    #[test]
    fn at_fires_once() {
        let s = Schedule::parse("at(2030-05-01T10:00:00)").unwrap();
        let start = utc("2030-01-01T00:00:00Z");
        assert_eq!(
            s.next_after(start, start, Tz::UTC),
            Some(utc("2030-05-01T10:00:00Z"))
        );
        assert_eq!(
            s.next_after(utc("2030-06-01T00:00:00Z"), start, Tz::UTC),
            None
        );
    }
}
