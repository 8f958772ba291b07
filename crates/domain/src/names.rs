//! Names and qualifiers: function names, alias names, and the `qualifier` that
//! selects what an invocation runs (`$LATEST`, a version number, an alias).

use std::fmt;
use std::str::FromStr;

/// The qualifier of the unpublished, mutable version (version number 0).
pub const LATEST: &str = "$LATEST";

/// Maximum length of a function name (seed: max 64 chars).
pub const MAX_FUNCTION_NAME_LEN: usize = 64;
/// Maximum length of an alias name.
pub const MAX_ALIAS_NAME_LEN: usize = 128;

/// The seed's function-name rule: `^[a-zA-Z0-9\-]{1,64}$`.
pub fn is_valid_function_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_FUNCTION_NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Alias names: 1–128 of `[a-zA-Z0-9_-]`, not all digits (that would read as a
/// version number) and not `$LATEST`.
pub fn validate_alias_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("AliasName is required".into());
    }
    if name.len() > MAX_ALIAS_NAME_LEN
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "AliasName must be letters, digits, '-' or '_', max {MAX_ALIAS_NAME_LEN} characters"
        ));
    }
    if name.bytes().all(|b| b.is_ascii_digit()) {
        return Err("AliasName must not be a number (numbers name versions)".into());
    }
    Ok(())
}

/// What an invocation or trigger targets.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Qualifier {
    /// `$LATEST` — version 0, the mutable working copy.
    Latest,
    /// A published version number (1, 2, …). `v3` is accepted as well as `3`.
    Version(u32),
    /// An alias name.
    Alias(String),
}

/// Why a qualifier string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid qualifier '{0}': expected $LATEST, a version number or an alias name")]
pub struct InvalidQualifier(pub String);

impl FromStr for Qualifier {
    type Err = InvalidQualifier;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s == LATEST {
            return Ok(Qualifier::Latest);
        }
        let digits = s.strip_prefix('v').unwrap_or(s);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return match digits.parse::<u32>() {
                Ok(0) => Ok(Qualifier::Latest),
                Ok(n) => Ok(Qualifier::Version(n)),
                Err(_) => Err(InvalidQualifier(s.to_owned())),
            };
        }
        validate_alias_name(s).map_err(|_| InvalidQualifier(s.to_owned()))?;
        Ok(Qualifier::Alias(s.to_owned()))
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Qualifier::Latest => f.write_str(LATEST),
            Qualifier::Version(n) => write!(f, "{n}"),
            Qualifier::Alias(a) => f.write_str(a),
        }
    }
}

/// Where an asynchronous invocation goes once its attempts are exhausted:
/// `function[:qualifier]` (the qualifier `$LATEST` when absent).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeadLetterTarget {
    pub function: String,
    pub qualifier: Qualifier,
}

/// Why a dead-letter target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("DeadLetterTarget '{0}' must be a function name (alphanumeric with dashes, max 64 characters) with an optional ':qualifier' ($LATEST, a version number or an alias name)")]
pub struct InvalidDeadLetterTarget(pub String);

impl FromStr for DeadLetterTarget {
    type Err = InvalidDeadLetterTarget;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let refused = || InvalidDeadLetterTarget(s.to_owned());
        let (function, qualifier) = match s.split_once(':') {
            Some((f, q)) if !q.is_empty() => (f, q.parse().map_err(|_| refused())?),
            Some(_) => return Err(refused()),
            None => (s, Qualifier::Latest),
        };
        if !is_valid_function_name(function) {
            return Err(refused());
        }
        Ok(Self {
            function: function.to_owned(),
            qualifier,
        })
    }
}

impl fmt::Display for DeadLetterTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.function, self.qualifier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_name_limits() {
        assert!(is_valid_function_name(&"a".repeat(64)));
        assert!(!is_valid_function_name(&"a".repeat(65)));
        assert!(is_valid_function_name("image-processor-2"));
        assert!(!is_valid_function_name(""));
        assert!(!is_valid_function_name("under_score"));
        assert!(!is_valid_function_name("dot.name"));
        assert!(!is_valid_function_name("ünicode"));
    }

    #[test]
    fn alias_names() {
        assert!(validate_alias_name("prod").is_ok());
        assert!(validate_alias_name("blue_green-2").is_ok());
        assert!(validate_alias_name(&"a".repeat(128)).is_ok());
        assert!(validate_alias_name(&"a".repeat(129)).is_err());
        assert!(validate_alias_name("").is_err());
        assert!(validate_alias_name("42").is_err());
        assert!(validate_alias_name("$LATEST").is_err());
    }

    #[test]
    fn qualifiers_parse() {
        assert_eq!("$LATEST".parse::<Qualifier>().unwrap(), Qualifier::Latest);
        assert_eq!("".parse::<Qualifier>().unwrap(), Qualifier::Latest);
        assert_eq!("7".parse::<Qualifier>().unwrap(), Qualifier::Version(7));
        assert_eq!("v7".parse::<Qualifier>().unwrap(), Qualifier::Version(7));
        assert_eq!("0".parse::<Qualifier>().unwrap(), Qualifier::Latest);
        assert_eq!(
            "prod".parse::<Qualifier>().unwrap(),
            Qualifier::Alias("prod".into())
        );
        assert!("99999999999".parse::<Qualifier>().is_err());
        assert!("bad name".parse::<Qualifier>().is_err());
        assert_eq!(Qualifier::Version(3).to_string(), "3");
        assert_eq!(Qualifier::Latest.to_string(), "$LATEST");
    }

    #[test]
    fn dead_letter_targets_parse() {
        let t: DeadLetterTarget = "on-failure".parse().unwrap();
        assert_eq!(
            (t.function.as_str(), &t.qualifier),
            ("on-failure", &Qualifier::Latest)
        );
        let t: DeadLetterTarget = "on-failure:prod".parse().unwrap();
        assert_eq!(t.qualifier, Qualifier::Alias("prod".into()));
        assert_eq!(t.to_string(), "on-failure:prod");
        let t: DeadLetterTarget = "f:3".parse().unwrap();
        assert_eq!(t.qualifier, Qualifier::Version(3));
        for bad in [
            "",
            ":prod",
            "f:",
            "under_score",
            "f:a:b",
            "f:bad alias",
            &"a".repeat(65),
        ] {
            assert!(bad.parse::<DeadLetterTarget>().is_err(), "{bad:?}");
        }
    }
}
