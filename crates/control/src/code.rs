//! Code packages: checked once at upload so that runners can trust them.

use std::collections::HashSet;
use std::io::{Cursor, Read};
use std::path::PathBuf;

use bytes::Bytes;
use hotswap_domain::{package, Runtime};
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
        // Every entry is decompressed once here: sizes are what the data
        // holds, not what the directory claims (a zip that lies would pass
        // this check and fail at invoke), CRCs are checked, and symlinks are
        // kept only when they stay inside the package.
        let mut unpacked: u64 = 0;
        let mut bootstrap: Option<Option<u32>> = None;
        let mut links: Vec<(PathBuf, String)> = Vec::new();
        for i in 0..archive.len() {
            let mut entry = archive.by_index(i).map_err(|e| {
                ControlError::InvalidCode(format!("code package entry {i} is unreadable: {e}"))
            })?;
            let Some(path) = entry.enclosed_name() else {
                return Err(ControlError::InvalidCode(format!(
                    "code package entry '{}' escapes the package root",
                    entry.name()
                )));
            };
            let declared = entry.size();
            let budget = limits.max_unzipped_bytes.saturating_sub(unpacked);
            let is_link = package::is_symlink_mode(entry.unix_mode());
            let mut link_target = Vec::new();
            let actual = if is_link {
                std::io::Read::take(&mut entry, package::MAX_LINK_TARGET as u64 + 1)
                    .read_to_end(&mut link_target)
                    .map(|n| n as u64)
            } else {
                std::io::copy(
                    &mut std::io::Read::take(&mut entry, declared.min(budget) + 1),
                    &mut std::io::sink(),
                )
            }
            .map_err(|e| {
                ControlError::InvalidCode(format!(
                    "code package entry '{}' cannot be unpacked: {e}",
                    path.display()
                ))
            })?;
            if actual > budget {
                return Err(ControlError::PayloadTooLarge(format!(
                    "code package unpacks to more than {} bytes, the limit",
                    limits.max_unzipped_bytes
                )));
            }
            if actual != declared {
                return Err(ControlError::InvalidCode(format!(
                    "code package entry '{}' declares {declared} bytes but holds {}",
                    path.display(),
                    if actual > declared {
                        "more".to_owned()
                    } else {
                        actual.to_string()
                    }
                )));
            }
            unpacked += actual;
            if is_link {
                let target = String::from_utf8(link_target).map_err(|_| {
                    ControlError::InvalidCode(format!(
                        "symlink '{}' has a target that is not UTF-8",
                        path.display()
                    ))
                })?;
                if path.as_os_str() == "bootstrap" {
                    bootstrap = Some(None);
                }
                links.push((path, target));
            } else if path.as_os_str() == "bootstrap" && !entry.is_dir() {
                bootstrap = Some(entry.unix_mode());
            }
        }
        let link_paths: HashSet<PathBuf> = links.iter().map(|(p, _)| p.clone()).collect();
        for (link, target) in &links {
            package::confined_link_target(link, target, &link_paths)
                .map_err(ControlError::InvalidCode)?;
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

    /// A stored zip of one file whose directory (central and local) claims
    /// `claimed` bytes.
    pub fn zip_lying_about_size(body: &[u8], claimed: u32) -> Bytes {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            w.start_file("app.py", opts).unwrap();
            w.write_all(body).unwrap();
            w.finish().unwrap();
        }
        let mut z = buf.into_inner();
        let patch = |z: &mut Vec<u8>, sig: &[u8; 4], at: usize| {
            let i = z.windows(4).position(|w| w == sig).unwrap();
            z[i + at..i + at + 4].copy_from_slice(&claimed.to_le_bytes());
        };
        patch(&mut z, b"PK\x03\x04", 22);
        patch(&mut z, b"PK\x01\x02", 24);
        Bytes::from(z)
    }

    #[test]
    fn sizes_are_what_the_entries_hold() {
        let limits = CodeLimits::default();
        let honest = zip_lying_about_size(&[b'x'; 1000], 1000);
        assert!(CodePackage::inspect(honest, Runtime::Python311, &limits).is_ok());
        for claimed in [10, 999, 5000] {
            let z = zip_lying_about_size(&[b'x'; 1000], claimed);
            let e = CodePackage::inspect(z, Runtime::Python311, &limits);
            assert!(
                matches!(&e, Err(ControlError::InvalidCode(m)) if m.contains("declares")),
                "claimed {claimed}: {e:?}"
            );
        }
    }

    fn zip_with_links(files: &[(&str, &str)], links: &[(&str, &str)]) -> Bytes {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default();
            for (name, body) in files {
                w.start_file(*name, opts).unwrap();
                w.write_all(body.as_bytes()).unwrap();
            }
            for (name, target) in links {
                w.add_symlink(*name, *target, opts).unwrap();
            }
            w.finish().unwrap();
        }
        Bytes::from(buf.into_inner())
    }

    #[test]
    fn symlinks_must_stay_inside_the_package() {
        let limits = CodeLimits::default();
        let ok = zip_with_links(&[("lib/v2/m.py", "x")], &[("lib/current", "v2")]);
        assert!(CodePackage::inspect(ok, Runtime::Python311, &limits).is_ok());
        for target in ["/etc/shadow", "../../etc/shadow", "x/../../../y"] {
            let z = zip_with_links(&[("app.py", "x")], &[("lib/evil", target)]);
            let e = CodePackage::inspect(z, Runtime::Python311, &limits);
            assert!(
                matches!(&e, Err(ControlError::InvalidCode(m)) if m.contains("symlink")),
                "{target}: {e:?}"
            );
        }
        // a Provided bootstrap may be a link to the real program
        let z = zip_with_links(&[("bin/app", "#!/bin/sh\n")], &[("bootstrap", "bin/app")]);
        assert!(CodePackage::inspect(z, Runtime::Provided, &limits).is_ok());
    }

    #[test]
    fn provided_needs_bootstrap() {
        let z = zip_of(&[("main", "x")]);
        assert!(CodePackage::inspect(z, Runtime::Provided, &CodeLimits::default()).is_err());
        let z = zip_with_mode("bootstrap", 0o755);
        assert!(CodePackage::inspect(z, Runtime::Provided, &CodeLimits::default()).is_ok());
    }
}
