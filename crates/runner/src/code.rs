//! The code cache: each package is fetched from the blob store once per
//! runner, checked against its SHA-256, and unpacked read-only under
//! `{dir}/{sha256}`.

use std::collections::HashMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hotswap_domain::FunctionVersion;
use hotswap_store::BlobStore;
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
        let sha = &version.code_sha256;
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(RunnerError::Code(format!("invalid code hash '{sha}'")));
        }
        let target = self.dir.join(sha);
        if target.is_dir() {
            return Ok(target);
        }
        let lock = self
            .locks
            .lock()
            .await
            .entry(sha.clone())
            .or_default()
            .clone();
        let _held = lock.lock().await;
        if target.is_dir() {
            return Ok(target);
        }
        let bytes = self
            .blobs
            .get_verified(&version.code_location, sha, version.code_size)
            .await
            .map_err(|e| {
                RunnerError::Code(format!("cannot fetch code {}: {e}", version.code_location))
            })?;
        let dir = self.dir.clone();
        let target2 = target.clone();
        tokio::task::spawn_blocking(move || unpack(&bytes, &dir, &target2))
            .await
            .map_err(|e| RunnerError::Code(format!("unpack task failed: {e}")))??;
        tracing::debug!(sha256 = %sha, dir = %target.display(), "code unpacked");
        Ok(target)
    }
}

/// Unpacks into a scratch directory and renames it into place, so that a
/// half-unpacked package is never visible.
pub(crate) fn unpack(bytes: &[u8], cache_dir: &Path, target: &Path) -> Result<(), RunnerError> {
    use std::os::unix::fs::PermissionsExt;
    let err = |m: String| RunnerError::Code(m);
    std::fs::create_dir_all(cache_dir)
        .map_err(|e| err(format!("cannot create {}: {e}", cache_dir.display())))?;
    let scratch = cache_dir.join(format!(".tmp-{}", uuid::Uuid::new_v4()));
    let mut archive =
        zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| err(format!("not a zip: {e}")))?;
    let result = (|| {
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
            let path = scratch.join(&rel);
            if entry.is_dir() {
                std::fs::create_dir_all(&path).map_err(|e| err(e.to_string()))?;
                continue;
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
            }
            let mut out = std::fs::File::create(&path).map_err(|e| err(e.to_string()))?;
            std::io::copy(&mut entry, &mut out).map_err(|e| err(e.to_string()))?;
            // Read-only for everyone; executable where the zip says so, and
            // always for a root-level `bootstrap`.
            let exec =
                entry.unix_mode().is_some_and(|m| m & 0o111 != 0) || rel.as_os_str() == "bootstrap";
            let mode = if exec { 0o555 } else { 0o444 };
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                .map_err(|e| err(e.to_string()))?;
        }
        Ok(())
    })();
    if let Err(e) = result {
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
