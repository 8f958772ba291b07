//! Timestamps. The seed's `DateTime.UtcNow` defaults, truncated to whole
//! microseconds so that every store (PostgreSQL keeps microseconds) gives back
//! exactly what was written.

use chrono::{DateTime, Timelike, Utc};

pub type Timestamp = DateTime<Utc>;

/// The current UTC time, truncated to microseconds.
pub fn now() -> Timestamp {
    truncate(Utc::now())
}

/// Truncates a timestamp to whole microseconds.
pub fn truncate(t: Timestamp) -> Timestamp {
    let micros = t.nanosecond() / 1_000 * 1_000;
    t.with_nanosecond(micros).unwrap_or(t)
}
