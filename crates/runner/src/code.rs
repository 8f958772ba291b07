//! The code cache: each package is fetched from the blob store once per
//! runner, checked against its SHA-256, and unpacked read-only under
//! `{dir}/{sha256}`.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hotswap_domain::{package, FunctionVersion, LayerVersion};
use hotswap_store::BlobStore;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::RunnerError;

pub(crate) struct CodeCache {
    dir: PathBuf,
    blobs: BlobStore,
    locks: Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl CodeCache {
    pub fn new(dir: PathBuf, blobs: BlobStore) -> Self {
        Self {
            dir,
            blobs,
            locks: Mutex::default(),
        }
    }

    /// The unpacked code of `version`, fetching and unpacking it on first use.
    pub async fn ensure(&self, version: &FunctionVersion) -> Result<PathBuf, RunnerError> {
        let blob = (
            &version.code_sha256,
            version.code_location.as_str(),
            version.code_size,
        );
        self.ensure_dir(&version.code_sha256, &[blob]).await
    }

    /// The function's layers unpacked in order into one directory (later
    /// layers win), keyed by the hashes of the list: built once per runner.
    pub async fn ensure_opt(
        &self,
        layers: &[LayerVersion],
    ) -> Result<Option<PathBuf>, RunnerError> {
        if layers.is_empty() {
            return Ok(None);
        }
        let mut h = Sha256::new();
        for l in layers {
            h.update(l.code_sha256.as_bytes());
            h.update(b"/");
        }
        let key = format!("opt-{}", hex_string(&h.finalize()));
        let blobs: Vec<(&String, &str, u64)> = layers
            .iter()
            .map(|l| (&l.code_sha256, l.code_location.as_str(), l.code_size))
            .collect();
        self.ensure_dir(&key, &blobs).await.map(Some)
    }

    async fn ensure_dir(
        &self,
        key: &str,
        blobs: &[(&String, &str, u64)],
    ) -> Result<PathBuf, RunnerError> {
        for (sha, _, _) in blobs {
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(RunnerError::Code(format!("invalid code hash '{sha}'")));
            }
        }
        let target = self.dir.join(key);
        if target.is_dir() {
            return Ok(target);
        }
        let lock = self
            .locks
            .lock()
            .await
            .entry(key.to_owned())
            .or_default()
            .clone();
        let _held = lock.lock().await;
        if target.is_dir() {
            return Ok(target);
        }
        let mut zips = Vec::with_capacity(blobs.len());
        for (sha, location, size) in blobs {
            let bytes = self
                .blobs
                .get_verified(location, sha, *size)
                .await
                .map_err(|e| RunnerError::Code(format!("cannot fetch {location}: {e}")))?;
            zips.push(bytes);
        }
        let dir = self.dir.clone();
        let target2 = target.clone();
        tokio::task::spawn_blocking(move || {
            let refs: Vec<&[u8]> = zips.iter().map(|b| b.as_ref()).collect();
            unpack(&refs, &dir, &target2)
        })
        .await
        .map_err(|e| RunnerError::Code(format!("unpack task failed: {e}")))??;
        tracing::debug!(key, dir = %target.display(), "code unpacked");
        Ok(target)
    }
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Unpacks the zips, in order, into a scratch directory (a later zip's file
/// replaces an earlier one's), then renames it into place, so that a
/// half-unpacked package is never visible.
pub(crate) fn unpack(zips: &[&[u8]], cache_dir: &Path, target: &Path) -> Result<(), RunnerError> {
    let err = |m: String| RunnerError::Code(m);
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| err(format!("cannot create {}: {e}", cache_dir.display())))?;
    let scratch = cache_dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    if let Err(e) = zips.iter().try_for_each(|z| unpack_one(z, &scratch)) {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(e);
    }
    match std::fs::rename(&scratch, target) {
        Ok(()) => Ok(()),
        // Another runner process won the race: theirs is identical.
        Err(_) if target.is_dir() => {
            let _ = std::fs::remove_dir_all(&scratch);
            Ok(())
        }
        Err(e) => Err(err(format!("cannot move code into place: {e}"))),
    }
}

fn unpack_one(bytes: &[u8], into: &Path) -> Result<(), RunnerError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |m: String| RunnerError::Code(m);
    std::fs::create_dir_all(into).map_err(|e| err(e.to_string()))?;
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| err(format!("not a zip: {e}")))?;
    // The package's own links, for the same confinement rule the upload
    // applied (`hotswap_domain::package`).
    let mut links = std::collections::HashSet::new();
    for i in 0..archive.len() {
        let entry = archive
            .by_index_raw(i)
            .map_err(|e| err(format!("zip entry {i}: {e}")))?;
        if package::is_symlink_mode(entry.unix_mode()) {
            links.extend(entry.enclosed_name());
        }
    }
    for i in 0..archive.len() {
        let mut entry = archive
            .by_index(i)
            .map_err(|e| err(format!("zip entry {i}: {e}")))?;
        let Some(rel) = entry.enclosed_name() else {
            return Err(err(format!(
                "zip entry '{}' escapes the package",
                entry.name()
            )));
        };
        // Never write through a link: an earlier entry (or an earlier
        // layer) that made `lib` a link to `/etc` must not let `lib/passwd`
        // land on the host.
        no_links_above(into, &rel)?;
        let path = into.join(&rel);
        if entry.is_dir() {
            std::fs::create_dir_all(&path).map_err(|e| err(e.to_string()))?;
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
        }
        // A later layer replaces an earlier one's file or link (read-only by then).
        let _ = std::fs::remove_file(&path);
        if package::is_symlink_mode(entry.unix_mode()) {
            let mut target = String::new();
            std::io::Read::take(&mut entry, package::MAX_LINK_TARGET as u64 + 1)
                .read_to_string(&mut target)
                .map_err(|e| err(format!("symlink '{}': {e}", rel.display())))?;
            package::confined_link_target(&rel, &target, &links).map_err(err)?;
            std::os::unix::fs::symlink(&target, &path).map_err(|e| err(e.to_string()))?;
            continue;
        }
        let mut out = std::fs::File::create(&path).map_err(|e| err(e.to_string()))?;
        // Never write more than the entry declares: a zip bomb whose
        // directory understates its sizes stops here, not at a full disk.
        let declared = entry.size();
        let written = std::io::copy(&mut std::io::Read::take(&mut entry, declared + 1), &mut out)
            .map_err(|e| err(e.to_string()))?;
        if written > declared {
            return Err(err(format!(
                "zip entry '{}' is larger than it declares",
                rel.display()
            )));
        }
        // Read-only for everyone; executable where the zip says so, and
        // always for a root-level `bootstrap`.
        let exec =
            entry.unix_mode().is_some_and(|m| m & 0o111 != 0) || rel.as_os_str() == "bootstrap";
        let mode = if exec { 0o555 } else { 0o444 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| err(e.to_string()))?;
    }
    Ok(())
}

/// Refuses `rel` when any directory above it under `root` is a symlink.
fn no_links_above(root: &Path, rel: &Path) -> Result<(), RunnerError> {
    let mut at = root.to_path_buf();
    let parents: Vec<_> = rel
        .parent()
        .map(|p| p.components().collect())
        .unwrap_or_default();
    for c in parents {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Ok(m) if m.file_type().is_symlink() => {
                return Err(RunnerError::Code(format!(
                    "zip entry '{}' lies under a symlink of the package",
                    rel.display()
                )))
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
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
        buf.into_inner()
    }

    #[test]
    fn later_zips_win_and_files_are_read_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let a = zip_of(&[("python/which.py", "A"), ("python/only_a.py", "a")]);
        let b = zip_of(&[("python/which.py", "B")]);
        let target = dir.path().join("opt");
        unpack(&[&a, &b], dir.path(), &target).unwrap();
        assert_eq!(
            std::fs::read_to_string(target.join("python/which.py")).unwrap(),
            "B"
        );
        assert_eq!(
            std::fs::read_to_string(target.join("python/only_a.py")).unwrap(),
            "a"
        );
        let mode = std::fs::metadata(target.join("python/which.py"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o444);
        let bad = zip_of(&[("../x", "x")]);
        assert!(unpack(&[&bad], dir.path(), &dir.path().join("bad")).is_err());
        assert!(!dir.path().join("bad").exists());
    }

    fn zip_with_links(files: &[(&str, &str)], links: &[(&str, &str)]) -> Vec<u8> {
        let mut buf = Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut buf);
            let opts = zip::write::SimpleFileOptions::default();
            for (name, target) in links {
                w.add_symlink(*name, *target, opts).unwrap();
            }
            for (name, body) in files {
                w.start_file(*name, opts).unwrap();
                w.write_all(body.as_bytes()).unwrap();
            }
            w.finish().unwrap();
        }
        buf.into_inner()
    }

    #[test]
    fn symlinks_are_kept_inside_the_package_and_never_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let z = zip_with_links(&[("lib/v2/m.py", "M")], &[("lib/current", "v2")]);
        let target = dir.path().join("task");
        unpack(&[&z], dir.path(), &target).unwrap();
        let link = target.join("lib/current");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read_link(&link).unwrap(), PathBuf::from("v2"));
        assert_eq!(std::fs::read_to_string(link.join("m.py")).unwrap(), "M");

        // A link out of the package is refused, and so is writing through a
        // link, even one that points inside: `etc` -> the host's directory.
        let outside = dir.path().join("host-etc");
        std::fs::create_dir(&outside).unwrap();
        let escape = zip_with_links(&[], &[("etc", outside.to_str().unwrap())]);
        assert!(unpack(&[&escape], dir.path(), &dir.path().join("a")).is_err());
        let through = zip_with_links(&[("d/passwd", "pwned")], &[("d", "sub")]);
        assert!(unpack(&[&through], dir.path(), &dir.path().join("b")).is_err());
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        assert!(!dir.path().join("a").exists() && !dir.path().join("b").exists());
    }
}
