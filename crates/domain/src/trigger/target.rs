//! Where a Queue trigger's dead letters (`deadLetterTarget`) and a Stream
//! trigger's discarded batches (`onFailure`) go: `fn:NAME[:QUALIFIER]` (an
//! asynchronous invocation of a function of the same owner) or `queue:NAME`
//! (HotSwap's embedded queue of that name, same owner).

use std::fmt;
use std::str::FromStr;

use crate::names::{DeadLetterTarget, Qualifier};
use crate::queue::is_valid_queue_name;

/// A parsed `deadLetterTarget` / `onFailure`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DeliveryTarget {
    /// `fn:NAME[:QUALIFIER]`: an asynchronous invocation of that function
    /// (`$LATEST` when no qualifier is given).
    Function { name: String, qualifier: Qualifier },
    /// `queue:NAME`: a message on that embedded queue.
    Queue { name: String },
}

/// Why a delivery target was refused (the text as given).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' must be fn:NAME[:QUALIFIER] (a function name with an optional $LATEST, version number or alias) or queue:NAME (1-80 letters, digits, '-' or '_')")]
pub struct InvalidDeliveryTarget(pub String);

impl FromStr for DeliveryTarget {
    type Err = InvalidDeliveryTarget;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refused = || InvalidDeliveryTarget(s.to_owned());
        let (kind, rest) = s.split_once(':').ok_or_else(refused)?;
        match kind {
            "fn" => {
                let t: DeadLetterTarget = rest.parse().map_err(|_| refused())?;
                Ok(DeliveryTarget::Function {
                    name: t.function,
                    qualifier: t.qualifier,
                })
            }
            "queue" if is_valid_queue_name(rest) => Ok(DeliveryTarget::Queue {
                name: rest.to_owned(),
            }),
            _ => Err(refused()),
        }
    }
}

impl fmt::Display for DeliveryTarget {
    /// The config form; `$LATEST` is left implicit.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeliveryTarget::Function {
                name,
                qualifier: Qualifier::Latest,
            } => write!(f, "fn:{name}"),
            DeliveryTarget::Function { name, qualifier } => write!(f, "fn:{name}:{qualifier}"),
            DeliveryTarget::Queue { name } => write!(f, "queue:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DeliveryTarget, InvalidDeliveryTarget> {
        s.parse()
    }

    #[test]
    fn function_targets() {
        assert_eq!(
            parse("fn:on-failure").unwrap(),
            DeliveryTarget::Function {
                name: "on-failure".into(),
                qualifier: Qualifier::Latest
            }
        );
        assert_eq!(
            parse("fn:audit:prod").unwrap(),
            DeliveryTarget::Function {
                name: "audit".into(),
                qualifier: Qualifier::Alias("prod".into())
            }
        );
        assert_eq!(
            parse("fn:audit:3").unwrap(),
            DeliveryTarget::Function {
                name: "audit".into(),
                qualifier: Qualifier::Version(3)
            }
        );
        assert_eq!(
            parse("fn:audit:$LATEST").unwrap(),
            parse("fn:audit").unwrap()
        );
    }

    #[test]
    fn queue_targets() {
        assert_eq!(
            parse("queue:orders-dlq").unwrap(),
            DeliveryTarget::Queue {
                name: "orders-dlq".into()
            }
        );
        assert!(parse(&format!("queue:{}", "q".repeat(80))).is_ok());
    }

    #[test]
    fn refused_targets() {
        for bad in [
            "",
            "audit",
            "fn:",
            "fn:audit:",
            "fn:under_score",
            "fn:a:b:c",
            "fn:a:bad alias",
            "queue:",
            "queue:a b",
            "queue:a:b",
            "queue:a.b",
            &format!("queue:{}", "q".repeat(81)),
            "FN:audit",
            "function:audit",
            "sqs:q",
            ":audit",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.0, bad);
            assert!(e.to_string().contains("fn:NAME[:QUALIFIER]"), "{e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["fn:audit", "fn:audit:prod", "fn:audit:7", "queue:dlq_1"] {
            assert_eq!(parse(s).unwrap().to_string(), s);
        }
        assert_eq!(parse("fn:audit:$LATEST").unwrap().to_string(), "fn:audit");
        assert_eq!(parse("fn:audit:v7").unwrap().to_string(), "fn:audit:7");
    }
}
