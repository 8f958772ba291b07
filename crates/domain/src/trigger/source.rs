//! Where a Queue or Stream trigger reads from ([`TriggerSource`]) and where
//! a stream starts ([`StartingPosition`]).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The broker (or HotSwap's own queue) a Queue or Stream trigger consumes.
/// Queues take `embedded` (the default), `rabbitmq`, `nats` or `redis`;
/// streams `nats`, `redis` or `kafka` (required).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TriggerSource {
    /// HotSwap's durable queue in the metadata store (queues only).
    Embedded,
    /// A RabbitMQ queue of that name (queues only).
    Rabbitmq,
    /// A NATS JetStream stream of that name.
    Nats,
    /// A Redis stream of that key (consumer groups).
    Redis,
    /// A Kafka topic, one shard per partition (streams only).
    Kafka,
}

impl TriggerSource {
    pub const ALL: [TriggerSource; 5] = [
        TriggerSource::Embedded,
        TriggerSource::Rabbitmq,
        TriggerSource::Nats,
        TriggerSource::Redis,
        TriggerSource::Kafka,
    ];
    /// The sources a Queue trigger may name.
    pub const QUEUE: [TriggerSource; 4] = [
        TriggerSource::Embedded,
        TriggerSource::Rabbitmq,
        TriggerSource::Nats,
        TriggerSource::Redis,
    ];
    /// The sources a Stream trigger may name.
    pub const STREAM: [TriggerSource; 3] = [
        TriggerSource::Nats,
        TriggerSource::Redis,
        TriggerSource::Kafka,
    ];
    /// A Queue trigger's source when it names none.
    pub const DEFAULT_QUEUE: TriggerSource = TriggerSource::Embedded;

    pub fn as_str(self) -> &'static str {
        match self {
            TriggerSource::Embedded => "embedded",
            TriggerSource::Rabbitmq => "rabbitmq",
            TriggerSource::Nats => "nats",
            TriggerSource::Redis => "redis",
            TriggerSource::Kafka => "kafka",
        }
    }

    pub fn serves_queues(self) -> bool {
        Self::QUEUE.contains(&self)
    }

    pub fn serves_streams(self) -> bool {
        Self::STREAM.contains(&self)
    }
}

impl fmt::Display for TriggerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TriggerSource {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown source '{s}' (embedded, rabbitmq, nats, redis, kafka)"))
    }
}

/// Where a stream trigger starts reading when it has no checkpoint yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StartingPosition {
    /// The oldest record the stream still holds.
    TrimHorizon,
    /// Only records added after the trigger starts.
    Latest,
    /// The first record at or after this time.
    AtTimestamp(DateTime<Utc>),
}

impl StartingPosition {
    /// The config's name of the position (`startingPosition`).
    pub fn as_str(&self) -> &'static str {
        match self {
            StartingPosition::TrimHorizon => "TRIM_HORIZON",
            StartingPosition::Latest => "LATEST",
            StartingPosition::AtTimestamp(_) => "AT_TIMESTAMP",
        }
    }
}

/// Parses `startingPositionTimestamp` (RFC 3339, any offset).
pub fn parse_starting_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_have_lowercase_names_both_ways() {
        for s in TriggerSource::ALL {
            let json = serde_json::to_value(s).unwrap();
            assert_eq!(json, s.as_str());
            assert_eq!(
                serde_json::from_value::<TriggerSource>(json).unwrap(),
                s,
                "{s}"
            );
            assert_eq!(s.as_str().parse::<TriggerSource>().unwrap(), s);
        }
        assert_eq!(
            "NATS".parse::<TriggerSource>().unwrap(),
            TriggerSource::Nats
        );
        assert!("kinesis".parse::<TriggerSource>().is_err());
        assert!(serde_json::from_value::<TriggerSource>("Embedded".into()).is_err());
    }

    #[test]
    fn sources_per_trigger_type() {
        assert!(TriggerSource::Embedded.serves_queues());
        assert!(!TriggerSource::Embedded.serves_streams());
        assert!(!TriggerSource::Kafka.serves_queues());
        assert!(TriggerSource::Kafka.serves_streams());
        assert!(TriggerSource::Rabbitmq.serves_queues());
        assert!(!TriggerSource::Rabbitmq.serves_streams());
        for s in [TriggerSource::Nats, TriggerSource::Redis] {
            assert!(s.serves_queues() && s.serves_streams());
        }
    }

    #[test]
    fn starting_timestamps_are_rfc3339() {
        let t = parse_starting_timestamp("2030-01-01T01:00:00+01:00").unwrap();
        assert_eq!(t, "2030-01-01T00:00:00Z".parse::<DateTime<Utc>>().unwrap());
        assert!(parse_starting_timestamp("2030-01-01T00:00:00.5Z").is_some());
        for bad in ["2030-01-01", "2030-01-01T00:00:00", "yesterday", ""] {
            assert!(parse_starting_timestamp(bad).is_none(), "{bad}");
        }
    }
}
