//! Schedule expressions in the EventBridge forms: `rate(N unit)`,
//! `cron(min hour day-of-month month day-of-week year)` and
//! `at(yyyy-mm-ddThh:mm:ss)`, evaluated in an IANA time zone.
//!
//! A schedule's ticks are the instants it fires. Everything here is pure:
//! the caller passes the times ([`Schedule::next_after`],
//! [`Schedule::last_at_or_before`]), nothing reads the clock.
//!
//! # Which instants are ticks
//!
//! - `rate(N unit)` (`second(s)` is a HotSwap extension; EventBridge has
//!   `minute(s)`, `hour(s)`, `day(s)`): `start + k × period` for k ≥ 1,
//!   pure elapsed time from the trigger's start. Time zones and daylight
//!   saving do not affect it: `rate(1 day)` is always 24 hours, also across
//!   a 23- or 25-hour local day (as EventBridge Scheduler does).
//! - `cron(…)`: the wall-clock times the pattern matches in the time zone,
//!   with EventBridge Scheduler's documented daylight-saving rules
//!   ("When the time shifts forward in Spring, your schedule invocation gets
//!   skipped if the cron expression falls on a non-existent date and time.
//!   When the time shifts back in the Fall, your schedule runs only once and
//!   doesn't repeat its invocation."):
//!   - **spring forward**: a wall-clock time that does not exist that day
//!     (`cron(30 2 * * ? *)` in Europe/Paris on 2031-03-30, where 02:00 jumps
//!     to 03:00) is *skipped*: no tick that day, and nothing is moved to
//!     03:00. An hourly pattern thus has no 02:00 tick, and its 03:00 tick
//!     fires once.
//!   - **fall back**: a wall-clock time that happens twice fires once, at its
//!     *first* occurrence (the summer-time one); the repeated hour's second
//!     pass fires nothing. `cron(0 * * * ? *)` in Europe/Paris on 2031-10-26
//!     ticks at 02:00 CEST (00:00Z) and next at 03:00 CET (02:00Z).
//!
//!   So no local time fires twice, and a time fires unless it does not exist.
//!   (croner, which matches the fields, would by itself move a non-existent
//!   time to the end of the gap, and a search starting inside the repeated
//!   hour would give back an instant before the search start; both are
//!   corrected here by walking the pattern's wall-clock matches and mapping
//!   each to an instant ourselves.)
//! - `at(…)`: once, at that local time. In the repeated fall-back hour, the
//!   first occurrence. A local time inside a spring-forward gap (which
//!   EventBridge does not document for one-time schedules) fires at the first
//!   instant after the gap: `at(2031-03-30T02:30:00)` in Europe/Paris fires
//!   at 03:00 CEST (01:00Z). A one-time schedule must fire once, so it is
//!   shifted rather than skipped.
//!
//! A trigger owes nothing from before it existed: only instants strictly
//! after `start` (the trigger's creation) are ticks, for every kind.

use std::time::Duration;

use chrono::{Datelike, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
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

/// Wall-clock matches of a cron pattern examined in one search before giving
/// up (each non-existent or repeated time costs one; a day-long gap such as
/// Samoa's in 2011 is 1,440 minutes).
const MAX_CRON_CANDIDATES: usize = 10_000;

/// How far back [`Schedule::last_at_or_before`] looks for a cron tick:
/// 2^23 minutes, about 16 years (Feb 29 can be 8 years apart).
const MAX_LOOKBACK_MINUTES: i64 = 1 << 23;

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

    /// The first tick strictly after `after` (and after `start`, the
    /// trigger's creation), in time zone `tz`. `None` when it never fires
    /// again. See the module documentation for daylight saving.
    pub fn next_after(&self, after: Timestamp, start: Timestamp, tz: Tz) -> Option<Timestamp> {
        let after = after.max(start);
        match self {
            Schedule::Rate(period) => {
                let period = period_micros(*period)?;
                let elapsed = (after - start).num_microseconds()?;
                rate_tick(start, period, elapsed / period + 1)
            }
            Schedule::Cron { cron, years } => cron_next(cron, *years, after, tz),
            Schedule::At(local) => resolve_at(local, tz).filter(|at| *at > after),
        }
    }

    /// The latest tick at or before `now` (and strictly after `start`), in
    /// time zone `tz`; `None` when there is none. With `next_after` it
    /// describes one set of ticks: the scheduler uses it to find the one
    /// missed tick it fires when it starts.
    ///
    /// Rates are arithmetic; a cron pattern is searched backwards in doubling
    /// windows (1 minute, 2, 4, … up to about 16 years), so the work is a few
    /// dozen pattern look-ups plus the ticks of the last window.
    pub fn last_at_or_before(&self, now: Timestamp, start: Timestamp, tz: Tz) -> Option<Timestamp> {
        if now <= start {
            return None;
        }
        match self {
            Schedule::Rate(period) => {
                let period = period_micros(*period)?;
                let k = (now - start).num_microseconds()? / period;
                (k >= 1).then(|| rate_tick(start, period, k)).flatten()
            }
            Schedule::Cron { years, .. } => {
                // Past the last allowed year, search back from its end.
                let now = match years {
                    Some((_, hi)) => {
                        let end = NaiveDate::from_ymd_opt(hi + 1, 1, 1)?.and_hms_opt(0, 0, 0)?;
                        now.min(resolve_at(&end, tz)?)
                    }
                    None => now,
                };
                self.cron_last(now, start, tz)
            }
            Schedule::At(local) => resolve_at(local, tz).filter(|at| *at > start && *at <= now),
        }
    }

    fn cron_last(&self, now: Timestamp, start: Timestamp, tz: Tz) -> Option<Timestamp> {
        let mut minutes = 1;
        loop {
            let from = now
                .checked_sub_signed(chrono::Duration::minutes(minutes))?
                .max(start);
            let mut last = None;
            let mut t = from;
            while let Some(next) = self.next_after(t, start, tz).filter(|n| *n <= now) {
                last = Some(next);
                t = next;
            }
            if last.is_some() || from == start || minutes >= MAX_LOOKBACK_MINUTES {
                return last;
            }
            minutes *= 2;
        }
    }
}

fn period_micros(period: Duration) -> Option<i64> {
    i64::try_from(period.as_micros()).ok().filter(|p| *p > 0)
}

/// `start + k × period`.
fn rate_tick(start: Timestamp, period_us: i64, k: i64) -> Option<Timestamp> {
    start.checked_add_signed(chrono::Duration::microseconds(period_us.checked_mul(k)?))
}

/// The first cron tick strictly after `after`: the pattern's wall-clock
/// matches are walked in order (croner searching a calendar without daylight
/// saving: UTC used as a plain calendar), and each is mapped to an instant
/// by the rules of the module documentation.
fn cron_next(
    cron: &Cron,
    years: Option<(i32, i32)>,
    after: Timestamp,
    tz: Tz,
) -> Option<Timestamp> {
    // A tick after `after` has a wall-clock time after `after`'s, except in
    // the second pass of a repeated hour, whose times are never ticks.
    let mut wall = after.with_timezone(&tz).naive_local();
    for _ in 0..MAX_CRON_CANDIDATES {
        if let Some((lo, _)) = years {
            if wall.year() < lo {
                wall = NaiveDate::from_ymd_opt(lo, 1, 1)?.and_hms_opt(0, 0, 0)?
                    - chrono::Duration::seconds(1);
            }
        }
        let next = cron
            .find_next_occurrence(&Utc.from_utc_datetime(&wall), false)
            .ok()?
            .naive_utc();
        if matches!(years, Some((_, hi)) if next.year() > hi) {
            return None;
        }
        match tz.from_local_datetime(&next) {
            // Fall back: the first occurrence only.
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                let t = t.with_timezone(&Utc);
                if t > after {
                    return Some(t);
                }
            }
            // Spring forward: a time that does not exist is skipped.
            LocalResult::None => {}
        }
        wall = next;
    }
    None
}

/// The instant of a local time: its first occurrence when it happens twice,
/// the end of the gap when it does not exist.
fn resolve_at(local: &NaiveDateTime, tz: Tz) -> Option<Timestamp> {
    if let Some(t) = tz.from_local_datetime(local).earliest() {
        return Some(t.with_timezone(&Utc));
    }
    // In a gap: find the first valid whole minute after it, then the first
    // valid second before that minute (gaps may end off the minute).
    let minute = chrono::Duration::minutes(1);
    let mut m = local.with_second(0)?.with_nanosecond(0)?;
    for _ in 0..2 * 24 * 60 {
        m = m.checked_add_signed(minute)?;
        if let Some(mut first) = tz.from_local_datetime(&m).earliest() {
            for s in 1..60 {
                let earlier = m - chrono::Duration::seconds(s);
                match tz.from_local_datetime(&earlier).earliest() {
                    Some(t) if earlier > *local => first = t,
                    _ => break,
                }
            }
            return Some(first.with_timezone(&Utc));
        }
    }
    None
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
        ("second", true) | ("seconds", false) => 1,
        ("minute", true) | ("minutes", false) => 60,
        ("hour", true) | ("hours", false) => 3600,
        ("day", true) | ("days", false) => 86_400,
        ("second" | "minute" | "hour" | "day", false) => {
            return Err(format!(
                "rate({n} {unit}): use the plural unit for values above 1"
            ))
        }
        ("seconds" | "minutes" | "hours" | "days", true) => {
            return Err(format!(
                "rate(1 {unit}): use the singular unit for a value of 1"
            ))
        }
        _ => {
            return Err(format!(
                "unknown rate unit '{unit}' (second(s), minute(s), hour(s), day(s))"
            ))
        }
    };
    n.checked_mul(secs)
        .filter(|s| *s <= i64::MAX as u64 / 1_000_000)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("rate({n} {unit}) is too long"))
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

    use chrono_tz::America::New_York;
    use chrono_tz::Europe::Paris;

    /// Every tick in `[from, to]`, in UTC.
    fn ticks(expr: &str, tz: Tz, from: &str, to: &str) -> Vec<String> {
        let s = Schedule::parse(expr).unwrap();
        let (from, to) = (utc(from), utc(to));
        // A start long before: it does not limit cron ticks.
        let start = utc("2000-01-01T00:00:00Z");
        let mut out = Vec::new();
        let mut t = from - chrono::Duration::seconds(1);
        while let Some(next) = s.next_after(t, start, tz).filter(|n| *n <= to) {
            out.push(next.format("%Y-%m-%dT%H:%MZ").to_string());
            t = next;
        }
        out
    }

    /// `n` hourly instants from `first` (UTC), formatted like [`ticks`].
    fn hourly(first: &str, n: i64) -> Vec<String> {
        (0..n)
            .map(|h| {
                (utc(first) + chrono::Duration::hours(h))
                    .format("%Y-%m-%dT%H:%MZ")
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn rate_seconds() {
        assert!(
            matches!(Schedule::parse("rate(1 second)"), Ok(Schedule::Rate(d)) if d == Duration::from_secs(1))
        );
        assert!(
            matches!(Schedule::parse("rate(30 seconds)"), Ok(Schedule::Rate(d)) if d == Duration::from_secs(30))
        );
        assert!(Schedule::parse("rate(1 seconds)").is_err());
        assert!(Schedule::parse("rate(2 second)").is_err());
        assert!(Schedule::parse("rate(0 seconds)").is_err());
        assert!(Schedule::parse("rate(-1 seconds)").is_err());
        assert!(Schedule::parse("rate(99999999999999999 days)").is_err());
        let s = Schedule::parse("rate(10 seconds)").unwrap();
        let start = utc("2030-01-01T00:00:00.250Z");
        let next = |after: &str| s.next_after(utc(after), start, Tz::UTC);
        assert_eq!(
            next("2030-01-01T00:00:25Z"),
            Some(utc("2030-01-01T00:00:30.250Z"))
        );
        // Exactly on a tick: the following one.
        assert_eq!(
            next("2030-01-01T00:00:30.250Z"),
            Some(utc("2030-01-01T00:00:40.250Z"))
        );
        // Before the start: the first tick is one period after it.
        assert_eq!(
            next("2029-12-31T00:00:00Z"),
            Some(utc("2030-01-01T00:00:10.250Z"))
        );
        // Decades of seconds do not overflow.
        assert_eq!(
            Schedule::parse("rate(1 second)").unwrap().next_after(
                utc("2100-01-01T00:00:00Z"),
                start,
                Tz::UTC
            ),
            Some(utc("2100-01-01T00:00:00.250Z"))
        );
    }

    #[test]
    fn rates_ignore_daylight_saving() {
        // 24 hours apart across Paris's 23-hour day.
        let s = Schedule::parse("rate(1 day)").unwrap();
        let start = utc("2031-03-29T10:00:00Z");
        assert_eq!(
            s.next_after(start, start, Paris),
            Some(utc("2031-03-30T10:00:00Z"))
        );
    }

    #[test]
    fn daily_cron_across_paris_transitions() {
        // 2031-03-30 02:00 CET jumps to 03:00 CEST: 02:30 does not exist
        // that day, so it is skipped (not moved to 03:00).
        assert_eq!(
            ticks(
                "cron(30 2 * * ? *)",
                Paris,
                "2031-03-29T00:00:00Z",
                "2031-03-31T23:59:00Z"
            ),
            ["2031-03-29T01:30Z", "2031-03-31T00:30Z"]
        );
        // 2031-10-26 03:00 CEST falls back to 02:00 CET: 02:30 happens twice
        // and fires once, at its first occurrence (CEST, 00:30Z).
        assert_eq!(
            ticks(
                "cron(30 2 * * ? *)",
                Paris,
                "2031-10-25T00:00:00Z",
                "2031-10-27T23:59:00Z"
            ),
            [
                "2031-10-25T00:30Z",
                "2031-10-26T00:30Z",
                "2031-10-27T01:30Z"
            ]
        );
    }

    #[test]
    fn hourly_cron_across_paris_transitions() {
        // The 23-hour local day: 00:00 CET (23:00Z) … 01:00 CET (00:00Z),
        // no 02:00, 03:00 CEST (01:00Z) … 23:00 CEST (21:00Z). In UTC the
        // ticks stay one hour apart and none repeats.
        assert_eq!(
            ticks(
                "cron(0 * * * ? *)",
                Paris,
                "2031-03-29T23:00:00Z",
                "2031-03-30T21:59:00Z"
            ),
            hourly("2031-03-29T23:00:00Z", 23)
        );
        // The 25-hour local day: 02:00 fires once (CEST, 00:00Z); the
        // repeated 02:00 CET (01:00Z) does not; 03:00 CET is 02:00Z.
        let mut expected = hourly("2031-10-25T22:00:00Z", 3);
        expected.extend(hourly("2031-10-26T02:00:00Z", 21));
        let got = ticks(
            "cron(0 * * * ? *)",
            Paris,
            "2031-10-25T22:00:00Z",
            "2031-10-26T22:59:00Z",
        );
        assert_eq!(got.len(), 24);
        assert_eq!(got, expected);
    }

    #[test]
    fn crons_across_new_york_transitions() {
        // 2031-03-09 02:00 EST jumps to 03:00 EDT (07:00Z).
        assert_eq!(
            ticks(
                "cron(30 2 * * ? *)",
                New_York,
                "2031-03-08T00:00:00Z",
                "2031-03-10T23:59:00Z"
            ),
            ["2031-03-08T07:30Z", "2031-03-10T06:30Z"]
        );
        assert_eq!(
            ticks(
                "cron(0 * * * ? *)",
                New_York,
                "2031-03-09T05:00:00Z",
                "2031-03-10T03:59:00Z"
            ),
            hourly("2031-03-09T05:00:00Z", 23)
        );
        // 2031-11-02 02:00 EDT falls back to 01:00 EST (06:00Z): the repeated
        // hour is 01:00-01:59, so 02:30 is unambiguous (EST).
        assert_eq!(
            ticks(
                "cron(30 2 * * ? *)",
                New_York,
                "2031-11-01T00:00:00Z",
                "2031-11-03T23:59:00Z"
            ),
            [
                "2031-11-01T06:30Z",
                "2031-11-02T07:30Z",
                "2031-11-03T07:30Z"
            ]
        );
        // …and 01:30 fires once, at 01:30 EDT (05:30Z), not again at 06:30Z.
        assert_eq!(
            ticks(
                "cron(30 1 * * ? *)",
                New_York,
                "2031-11-01T00:00:00Z",
                "2031-11-03T23:59:00Z"
            ),
            [
                "2031-11-01T05:30Z",
                "2031-11-02T05:30Z",
                "2031-11-03T06:30Z"
            ]
        );
        let mut expected = hourly("2031-11-02T04:00:00Z", 2);
        expected.extend(hourly("2031-11-02T07:00:00Z", 22));
        assert_eq!(
            ticks(
                "cron(0 * * * ? *)",
                New_York,
                "2031-11-02T04:00:00Z",
                "2031-11-03T04:59:00Z"
            ),
            expected
        );
    }

    #[test]
    fn search_from_inside_the_repeated_hour_moves_forward() {
        // 06:10Z is 01:10 EST, the second pass: 01:30 EDT (05:30Z) is
        // already past, and 01:30 EST is not a tick.
        let s = Schedule::parse("cron(30 1 * * ? *)").unwrap();
        let start = utc("2031-01-01T00:00:00Z");
        assert_eq!(
            s.next_after(utc("2031-11-02T06:10:00Z"), start, New_York),
            Some(utc("2031-11-03T06:30:00Z"))
        );
        // From inside the first pass, the first occurrence is still ahead.
        assert_eq!(
            s.next_after(utc("2031-11-02T05:10:00Z"), start, New_York),
            Some(utc("2031-11-02T05:30:00Z"))
        );
    }

    #[test]
    fn at_in_a_gap_fires_when_the_gap_ends() {
        let start = utc("2031-01-01T00:00:00Z");
        let at = |expr: &str, tz: Tz| Schedule::parse(expr).unwrap().next_after(start, start, tz);
        // 02:30 does not exist in Paris on 2031-03-30: 03:00 CEST.
        assert_eq!(
            at("at(2031-03-30T02:30:00)", Paris),
            Some(utc("2031-03-30T01:00:00Z"))
        );
        assert_eq!(
            at("at(2031-03-09T02:15:00)", New_York),
            Some(utc("2031-03-09T07:00:00Z"))
        );
        // A repeated time: its first occurrence (EDT).
        assert_eq!(
            at("at(2031-11-02T01:30:00)", New_York),
            Some(utc("2031-11-02T05:30:00Z"))
        );
        // An ordinary one.
        assert_eq!(
            at("at(2031-03-30T03:00:00)", Paris),
            Some(utc("2031-03-30T01:00:00Z"))
        );
    }

    #[test]
    fn last_tick_of_a_rate() {
        let s = Schedule::parse("rate(30 seconds)").unwrap();
        let start = utc("2030-01-01T00:00:00Z");
        let last = |now: &str| s.last_at_or_before(utc(now), start, Tz::UTC);
        assert_eq!(
            last("2030-01-01T00:01:15Z"),
            Some(utc("2030-01-01T00:01:00Z"))
        );
        assert_eq!(
            last("2030-01-01T00:00:30Z"),
            Some(utc("2030-01-01T00:00:30Z"))
        );
        assert_eq!(last("2030-01-01T00:00:29.999Z"), None);
        assert_eq!(last("2030-01-01T00:00:00Z"), None);
        assert_eq!(last("2029-01-01T00:00:00Z"), None);
        let s = Schedule::parse("rate(2 hours)").unwrap();
        assert_eq!(
            s.last_at_or_before(utc("2030-01-02T05:00:00Z"), start, Paris),
            Some(utc("2030-01-02T04:00:00Z"))
        );
    }

    #[test]
    fn last_tick_of_a_cron() {
        let start = utc("2020-01-01T00:00:00Z");
        let last = |expr: &str, now: &str, tz: Tz| {
            Schedule::parse(expr)
                .unwrap()
                .last_at_or_before(utc(now), start, tz)
        };
        // Every minute: on the tick itself, and just after it.
        assert_eq!(
            last("cron(* * * * ? *)", "2031-05-05T10:20:00Z", Tz::UTC),
            Some(utc("2031-05-05T10:20:00Z"))
        );
        assert_eq!(
            last("cron(* * * * ? *)", "2031-05-05T10:20:59Z", Tz::UTC),
            Some(utc("2031-05-05T10:20:00Z"))
        );
        // In the repeated hour's second pass (02:30 CET), the last tick is
        // 02:00 CEST (00:00Z), not 02:00 CET.
        assert_eq!(
            last("cron(0 * * * ? *)", "2031-10-26T01:30:00Z", Paris),
            Some(utc("2031-10-26T00:00:00Z"))
        );
        // The skipped day: yesterday's 02:30.
        assert_eq!(
            last("cron(30 2 * * ? *)", "2031-03-30T12:00:00Z", Paris),
            Some(utc("2031-03-29T01:30:00Z"))
        );
        // Monthly, weekly, and Feb 29 (years back).
        assert_eq!(
            last("cron(0 9 1 * ? *)", "2031-05-20T00:00:00Z", Tz::UTC),
            Some(utc("2031-05-01T09:00:00Z"))
        );
        assert_eq!(
            last("cron(0 8 ? * 2 *)", "2031-05-20T00:00:00Z", Tz::UTC),
            Some(utc("2031-05-19T08:00:00Z"))
        );
        assert_eq!(
            last("cron(0 12 29 2 ? *)", "2031-06-01T00:00:00Z", Tz::UTC),
            Some(utc("2028-02-29T12:00:00Z"))
        );
        // Long after the last allowed year.
        assert_eq!(
            last("cron(0 0 1 1 ? 2021)", "2060-01-01T00:00:00Z", Tz::UTC),
            Some(utc("2021-01-01T00:00:00Z"))
        );
        // Before the first allowed year, or before the trigger existed.
        assert_eq!(
            last("cron(0 0 1 1 ? 2040)", "2031-01-01T00:00:00Z", Tz::UTC),
            None
        );
        let s = Schedule::parse("cron(0 * * * ? *)").unwrap();
        assert_eq!(
            s.last_at_or_before(
                utc("2031-05-05T10:30:00Z"),
                utc("2031-05-05T10:05:00Z"),
                Tz::UTC
            ),
            None
        );
    }

    #[test]
    fn last_and_next_agree() {
        // For every `now` across both Paris transition days, the tick after
        // the last one is after `now`.
        for expr in [
            "cron(0 * * * ? *)",
            "cron(30 2 * * ? *)",
            "cron(*/7 * * * ? *)",
        ] {
            let s = Schedule::parse(expr).unwrap();
            let start = utc("2031-01-01T00:00:00Z");
            for day in ["2031-03-29T22:00:00Z", "2031-10-25T22:00:00Z"] {
                let mut now = utc(day);
                while now < utc(day) + chrono::Duration::hours(26) {
                    let last = s.last_at_or_before(now, start, Paris).unwrap();
                    assert!(last <= now, "{expr} {now}");
                    let next = s.next_after(last, start, Paris).unwrap();
                    assert!(next > now, "{expr} {now}: {last} then {next}");
                    now += chrono::Duration::minutes(11);
                }
            }
        }
    }

    #[test]
    fn last_tick_of_an_at() {
        let s = Schedule::parse("at(2031-03-30T02:30:00)").unwrap();
        let start = utc("2031-01-01T00:00:00Z");
        assert_eq!(
            s.last_at_or_before(utc("2031-04-01T00:00:00Z"), start, Paris),
            Some(utc("2031-03-30T01:00:00Z"))
        );
        assert_eq!(
            s.last_at_or_before(utc("2031-03-30T01:00:00Z"), start, Paris),
            Some(utc("2031-03-30T01:00:00Z"))
        );
        assert_eq!(
            s.last_at_or_before(utc("2031-03-30T00:59:59Z"), start, Paris),
            None
        );
        // Created after its time: it never fires.
        let late = utc("2031-05-01T00:00:00Z");
        assert_eq!(
            s.last_at_or_before(utc("2031-06-01T00:00:00Z"), late, Paris),
            None
        );
        assert_eq!(s.next_after(late, late, Paris), None);
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
