//! The seed's `TimeSpan` fields on the wire: a number of seconds, or a string
//! such as `"5m"`, `"90s"`, `"1h 30m"` or `"00:05:00"` (api.md). Written back
//! as a number of seconds.

use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serializer};

/// Parses a duration given as text: `"300"`, `"5m"`, `"1h30m"`, `"00:05:00"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return from_secs(secs);
    }
    if t.contains(':') {
        return parse_timespan(t);
    }
    humantime::parse_duration(t).map_err(|e| format!("invalid duration '{t}': {e}"))
}

fn from_secs(secs: f64) -> Result<Duration, String> {
    if !secs.is_finite() || !(0.0..=10.0 * 365.0 * 86_400.0).contains(&secs) {
        return Err(format!(
            "invalid duration {secs}: must be 0 or more seconds"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `[d.]hh:mm:ss[.fff]`, the .NET `TimeSpan` text form.
fn parse_timespan(t: &str) -> Result<Duration, String> {
    let bad = || format!("invalid duration '{t}': expected hh:mm:ss");
    let (days, rest) = match t.split_once('.') {
        Some((d, r)) if r.contains(':') && !d.contains(':') => {
            (d.parse::<u64>().map_err(|_| bad())?, r)
        }
        _ => (0, t),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    if parts.len() != 3 {
        return Err(bad());
    }
    let h: u64 = parts[0].parse().map_err(|_| bad())?;
    let m: u64 = parts[1].parse().map_err(|_| bad())?;
    let s: f64 = parts[2].parse().map_err(|_| bad())?;
    if m >= 60 || !(0.0..60.0).contains(&s) {
        return Err(bad());
    }
    from_secs((days * 86_400 + h * 3_600 + m * 60) as f64 + s)
}

fn secs_value(d: &Duration) -> serde_json::Number {
    if d.subsec_nanos() == 0 {
        d.as_secs().into()
    } else {
        serde_json::Number::from_f64(d.as_secs_f64()).unwrap_or_else(|| d.as_secs().into())
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Raw {
    Number(f64),
    Text(String),
}

fn from_raw<E: de::Error>(raw: Raw) -> Result<Duration, E> {
    match raw {
        Raw::Number(n) => from_secs(n).map_err(E::custom),
        Raw::Text(t) => parse_duration(&t).map_err(E::custom),
    }
}

/// `#[serde(with = "duration::secs")]` for `Duration` fields.
pub mod secs {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&secs_value(d), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        from_raw(Raw::deserialize(d).map_err(|_| {
            de::Error::custom("expected a duration: seconds as a number, or a string like \"5m\"")
        })?)
    }
}

/// `#[serde(with = "duration::opt_secs")]` for `Option<Duration>` fields.
pub mod opt_secs {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => serde::Serialize::serialize(&secs_value(d), s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let raw = Option::<Raw>::deserialize(d).map_err(|_| {
            de::Error::custom("expected a duration: seconds as a number, or a string like \"5m\"")
        })?;
        raw.map(from_raw).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        assert_eq!(parse_duration("300").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(
            parse_duration("00:05:00").unwrap(),
            Duration::from_secs(300)
        );
        assert_eq!(
            parse_duration("1.00:00:01").unwrap(),
            Duration::from_secs(86_401)
        );
        assert_eq!(parse_duration("0.5").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("00:61:00").is_err());
    }

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "secs")]
        a: Duration,
        #[serde(with = "opt_secs", default)]
        b: Option<Duration>,
    }

    #[test]
    fn serde_round_trip() {
        let h: Holder = serde_json::from_str(r#"{"a":"5m","b":1.5}"#).unwrap();
        assert_eq!(h.a, Duration::from_secs(300));
        assert_eq!(h.b, Some(Duration::from_millis(1500)));
        assert_eq!(serde_json::to_string(&h).unwrap(), r#"{"a":300,"b":1.5}"#);
        let h: Holder = serde_json::from_str(r#"{"a":30}"#).unwrap();
        assert_eq!(h.b, None);
        assert!(serde_json::from_str::<Holder>(r#"{"a":true}"#).is_err());
        assert!(serde_json::from_str::<Holder>(r#"{"a":-5}"#).is_err());
    }
}
