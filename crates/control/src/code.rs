//! Code packages: checked once at upload so that runners can trust them.

use std::io::Cursor;

use bytes::Bytes;
use hotswap_domain::Runtime;
use sha2::{Digest, Sha256};

use crate::{ControlError, Result};

/// Limits on uploaded code.
#[derive(Debug, Clone)]
pub struct CodeLimits {
    /// Largest zip accepted, in bytes.
    pub max_zip_bytes: u64,
    /// Largest total unpacked size, in bytes.
    pub max_unzipped_bytes: u64,
    /// Most entries in one zip.
    pub max_entries: usize,
}

impl Default for CodeLimits {
    fn default() -> Self {
        Self {
            max_zip_bytes: 50 * 1024 * 1024,
            max_unzipped_bytes: 250 * 1024 * 1024,
            max_entries: 20_000,
        }
    }
}

/// A checked code package: a readable zip within the limits, with no entry
/// that escapes its root, and a `bootstrap` at the root for `Provided`.
#[derive(Debug, Clone)]
pub struct CodePackage {
    pub bytes: Bytes,
    pub sha256: String,
    pub size: u64,
}

impl CodePackage {
    pub fn inspect(bytes: Bytes, runtime: Runtime, limits: &CodeLimits) -> Result<CodePackage> {
        let size = bytes.len() as u64;
        if size > limits.max_zip_bytes {
            return Err(ControlError::PayloadTooLarge(format!(
                "code package is {size} bytes; the limit is {} bytes",
                limits.max_zip_bytes
            )));
        }
        if size == 0 {
            return Err(ControlError::InvalidCode(
                "code package is empty; expected a zip file".into(),
            ));
        }
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes.as_ref())).map_err(|e| {
            ControlError::InvalidCode(format!("code package is not a valid zip file: {e}"))
        })?;
        if archive.len() > limits.max_entries {
            return Err(ControlError::InvalidCode(format!(
                "code package has {} entries; the limit is {}",
                archive.len(),
                limits.max_entries
            )));
        }
        let mut unpacked: u64 = 0;
        let mut bootstrap: Option<Option<u32>> = None;
        for i in 0..archive.len() {
            let entry = archive.by_index_raw(i).map_err(|e| {
                ControlError::InvalidCode(format!("code package entry {i} is unreadable: {e}"))
            })?;
            let Some(path) = entry.enclosed_name() else {
                return Err(ControlError::InvalidCode(format!(
                    "code package entry '{}' escapes the package root",
                    entry.name()
                )));
            };
            if path.as_os_str() == "bootstrap" && !entry.is_dir() {
                bootstrap = Some(entry.unix_mode());
            }
            unpacked = unpacked.saturating_add(entry.size());
        }
        if unpacked > limits.max_unzipped_bytes {
            return Err(ControlError::PayloadTooLarge(format!(
                "code package unpacks to {unpacked} bytes; the limit is {} bytes",
                limits.max_unzipped_bytes
            )));
        }
        if runtime == Runtime::Provided {
            match bootstrap {
                None => {
                    return Err(ControlError::InvalidCode(
                        "a Provided function's zip must hold an executable 'bootstrap' at its root".into(),
                    ))
                }
                // Zips made without Unix permissions (mode absent) are
                // accepted; the runner marks the file executable.
                Some(Some(mode)) if mode & 0o111 == 0 => {
                    return Err(ControlError::InvalidCode(format!(
                        "'bootstrap' is not executable (mode {:o}); zip it with its execute permission",
                        mode & 0o7777
                    )))
                }
                Some(_) => {}
            }
        }
        let sha256 = hex::encode(Sha256::digest(&bytes));
        Ok(CodePackage {
            bytes,
            sha256,
            size,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::io::Write;

    use super::*;

    pub fn zip_of(files: &[(&str, &str)]) -> Bytes {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            for (name, body) in files {
                w.start_file(*name, zip::write::SimpleFileOptions::default())
                    .unwrap();
                w.write_all(body.as_bytes()).unwrap();
            }
            w.finish().unwrap();
        }
        Bytes::from(buf.into_inner())
    }

    #[test]
    fn accepts_a_zip_and_hashes_it() {
        let z = zip_of(&[("app.py", "def handler(e, c):\n    return e\n")]);
        let p =
            CodePackage::inspect(z.clone(), Runtime::Python311, &CodeLimits::default()).unwrap();
        assert_eq!(p.size, z.len() as u64);
        assert_eq!(p.sha256, hex::encode(Sha256::digest(&z)));
    }

    #[test]
    fn refuses_what_is_not_a_zip() {
        let e = CodePackage::inspect(
            Bytes::from_static(b"hello"),
            Runtime::Node20,
            &CodeLimits::default(),
        );
        assert!(matches!(e, Err(ControlError::InvalidCode(m)) if m.contains("not a valid zip")));
        let e = CodePackage::inspect(Bytes::new(), Runtime::Node20, &CodeLimits::default());
        assert!(matches!(e, Err(ControlError::InvalidCode(_))));
    }

    #[test]
    fn refuses_path_traversal() {
        let z = zip_of(&[("../evil.sh", "x")]);
        let e = CodePackage::inspect(z, Runtime::Node20, &CodeLimits::default());
        assert!(matches!(e, Err(ControlError::InvalidCode(m)) if m.contains("escapes")));
    }

    #[test]
    fn limits() {
        let z = zip_of(&[("a.txt", &"x".repeat(1000))]);
        let small = CodeLimits {
            max_zip_bytes: 10,
            ..Default::default()
        };
        assert!(matches!(
            CodePackage::inspect(z.clone(), Runtime::Node20, &small),
            Err(ControlError::PayloadTooLarge(_))
        ));
        let small = CodeLimits {
            max_unzipped_bytes: 999,
            ..Default::default()
        };
        assert!(matches!(
            CodePackage::inspect(z.clone(), Runtime::Node20, &small),
            Err(ControlError::PayloadTooLarge(_))
        ));
        let small = CodeLimits {
            max_entries: 0,
            ..Default::default()
        };
        assert!(matches!(
            CodePackage::inspect(z, Runtime::Node20, &small),
            Err(ControlError::InvalidCode(_))
        ));
    }

    fn zip_with_mode(name: &str, mode: u32) -> Bytes {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default().unix_permissions(mode);
            w.start_file(name, opts).unwrap();
            w.write_all(b"#!/bin/sh\n").unwrap();
            w.finish().unwrap();
        }
        Bytes::from(buf.into_inner())
    }

    #[test]
    fn provided_bootstrap_must_be_executable_when_modes_are_recorded() {
        let limits = CodeLimits::default();
        let e = CodePackage::inspect(
            zip_with_mode("bootstrap", 0o644),
            Runtime::Provided,
            &limits,
        );
        assert!(matches!(e, Err(ControlError::InvalidCode(m)) if m.contains("not executable")));
        assert!(CodePackage::inspect(
            zip_with_mode("bootstrap", 0o755),
            Runtime::Provided,
            &limits
        )
        .is_ok());
        assert!(
            CodePackage::inspect(zip_with_mode("app.py", 0o644), Runtime::Python311, &limits)
                .is_ok()
        );
    }

    #[test]
    fn provided_needs_bootstrap() {
        let z = zip_of(&[("main", "x")]);
        assert!(CodePackage::inspect(z, Runtime::Provided, &CodeLimits::default()).is_err());
        let z = zip_with_mode("bootstrap", 0o755);
        assert!(CodePackage::inspect(z, Runtime::Provided, &CodeLimits::default()).is_ok());
    }
}
