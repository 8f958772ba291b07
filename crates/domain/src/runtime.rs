//! The seed's `Runtime` enum and its extensions, plus `Provided` (api.md).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Supported function runtimes. JSON uses the variant names (`"Python311"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Runtime {
    Node16,
    Node18,
    Node20,
    Python38,
    Python39,
    Python310,
    Python311,
    Dotnet6,
    Dotnet7,
    Dotnet8,
    Go119,
    Go120,
    Go121,
    Java11,
    Java17,
    Java21,
    Ruby30,
    Ruby31,
    Ruby32,
    /// The zip holds an executable `bootstrap` that speaks the Lambda Runtime
    /// API itself (added by api.md).
    Provided,
}

/// The language family of a runtime; runners advertise what they can run per
/// family and version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuntimeFamily {
    Node,
    Python,
    Dotnet,
    Go,
    Java,
    Ruby,
    Provided,
}

impl Runtime {
    pub const ALL: [Runtime; 20] = [
        Runtime::Node16,
        Runtime::Node18,
        Runtime::Node20,
        Runtime::Python38,
        Runtime::Python39,
        Runtime::Python310,
        Runtime::Python311,
        Runtime::Dotnet6,
        Runtime::Dotnet7,
        Runtime::Dotnet8,
        Runtime::Go119,
        Runtime::Go120,
        Runtime::Go121,
        Runtime::Java11,
        Runtime::Java17,
        Runtime::Java21,
        Runtime::Ruby30,
        Runtime::Ruby31,
        Runtime::Ruby32,
        Runtime::Provided,
    ];

    /// The variant name, as on the wire.
    pub fn as_str(self) -> &'static str {
        use Runtime::*;
        match self {
            Node16 => "Node16",
            Node18 => "Node18",
            Node20 => "Node20",
            Python38 => "Python38",
            Python39 => "Python39",
            Python310 => "Python310",
            Python311 => "Python311",
            Dotnet6 => "Dotnet6",
            Dotnet7 => "Dotnet7",
            Dotnet8 => "Dotnet8",
            Go119 => "Go119",
            Go120 => "Go120",
            Go121 => "Go121",
            Java11 => "Java11",
            Java17 => "Java17",
            Java21 => "Java21",
            Ruby30 => "Ruby30",
            Ruby31 => "Ruby31",
            Ruby32 => "Ruby32",
            Provided => "Provided",
        }
    }

    pub fn family(self) -> RuntimeFamily {
        use Runtime::*;
        match self {
            Node16 | Node18 | Node20 => RuntimeFamily::Node,
            Python38 | Python39 | Python310 | Python311 => RuntimeFamily::Python,
            Dotnet6 | Dotnet7 | Dotnet8 => RuntimeFamily::Dotnet,
            Go119 | Go120 | Go121 => RuntimeFamily::Go,
            Java11 | Java17 | Java21 => RuntimeFamily::Java,
            Ruby30 | Ruby31 | Ruby32 => RuntimeFamily::Ruby,
            Provided => RuntimeFamily::Provided,
        }
    }

    /// The seed's `GetImageName`. The seed throws for Ruby (it is "planned");
    /// here every runtime has an image, so that no value of the enum panics.
    pub fn image_name(self) -> &'static str {
        use Runtime::*;
        match self {
            Node16 => "node:16-alpine",
            Node18 => "node:18-alpine",
            Node20 => "node:20-alpine",
            Python38 => "python:3.8-slim",
            Python39 => "python:3.9-slim",
            Python310 => "python:3.10-slim",
            Python311 => "python:3.11-slim",
            Dotnet6 => "mcr.microsoft.com/dotnet/runtime:6.0",
            Dotnet7 => "mcr.microsoft.com/dotnet/runtime:7.0",
            Dotnet8 => "mcr.microsoft.com/dotnet/runtime:8.0",
            Go119 => "golang:1.19-alpine",
            Go120 => "golang:1.20-alpine",
            Go121 => "golang:1.21-alpine",
            Java11 => "openjdk:11-jre-slim",
            Java17 => "openjdk:17-jre-slim",
            Java21 => "openjdk:21-jre-slim",
            Ruby30 => "ruby:3.0-slim",
            Ruby31 => "ruby:3.1-slim",
            Ruby32 => "ruby:3.2-slim",
            Provided => "provided:al2023",
        }
    }

    /// The seed's `GetEstimatedColdStartMs` (250 ms for the runtimes the seed
    /// leaves to its default arm: Ruby and Provided).
    pub fn estimated_cold_start_ms(self) -> u32 {
        match self.family() {
            RuntimeFamily::Node => 150,
            RuntimeFamily::Python => 200,
            RuntimeFamily::Dotnet => 400,
            RuntimeFamily::Go => 100,
            RuntimeFamily::Java => 550,
            RuntimeFamily::Ruby | RuntimeFamily::Provided => 250,
        }
    }
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown runtime name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown runtime '{0}' (expected one of Node16..Node20, Python38..Python311, Dotnet6..8, Go119..121, Java11/17/21, Ruby30..32, Provided)")]
pub struct UnknownRuntime(pub String);

impl FromStr for Runtime {
    type Err = UnknownRuntime;

    /// Case-insensitive: `python311`, `Python311` and `PYTHON311` are the same.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Runtime::ALL
            .iter()
            .copied()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownRuntime(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_is_case_insensitive_and_round_trips() {
        for r in Runtime::ALL {
            assert_eq!(r.as_str().parse::<Runtime>().unwrap(), r);
            assert_eq!(r.as_str().to_lowercase().parse::<Runtime>().unwrap(), r);
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("\"{}\"", r.as_str()));
            assert_eq!(serde_json::from_str::<Runtime>(&json).unwrap(), r);
        }
        assert!("cobol".parse::<Runtime>().is_err());
    }

    #[test]
    fn seed_images_and_cold_starts() {
        assert_eq!(Runtime::Python311.image_name(), "python:3.11-slim");
        assert_eq!(Runtime::Node20.image_name(), "node:20-alpine");
        assert_eq!(
            Runtime::Dotnet8.image_name(),
            "mcr.microsoft.com/dotnet/runtime:8.0"
        );
        assert_eq!(Runtime::Java21.image_name(), "openjdk:21-jre-slim");
        assert_eq!(Runtime::Node18.estimated_cold_start_ms(), 150);
        assert_eq!(Runtime::Python38.estimated_cold_start_ms(), 200);
        assert_eq!(Runtime::Dotnet7.estimated_cold_start_ms(), 400);
        assert_eq!(Runtime::Go121.estimated_cold_start_ms(), 100);
        assert_eq!(Runtime::Java11.estimated_cold_start_ms(), 550);
        assert_eq!(Runtime::Ruby32.estimated_cold_start_ms(), 250);
        assert_eq!(Runtime::Provided.estimated_cold_start_ms(), 250);
    }
}
