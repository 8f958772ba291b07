//! Code packages in an object store: a local directory by default, any
//! S3-compatible service by URL. What is read back is checked against the
//! SHA-256 and size recorded when it was written.
//!
//! Locations are `/`-separated keys such as
//! `functions/{name}/versions/{n}/code.zip` (see
//! `hotswap_domain::version::code_location`).

use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, PutPayload};
use sha2::{Digest, Sha256};

use crate::{Result, StoreError};

/// Where the code packages live.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    summary: String,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// What [`BlobStore::put`] stored: record these with the version, and pass
/// them to [`BlobStore::get_verified`] when reading it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// SHA-256 of the bytes, lower-case hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// The location written.
    pub location: String,
}

impl BlobStore {
    /// Wraps any object store; `summary` describes it in logs.
    pub fn new(store: Arc<dyn ObjectStore>, summary: impl Into<String>) -> Self {
        Self {
            store,
            summary: summary.into(),
        }
    }

    /// Opens the blob store named by `url`:
    ///
    /// - `file:///abs/dir`: a local directory, created when missing.
    /// - `s3://bucket[/prefix]?endpoint=http://host:9000&region=us-east-1`:
    ///   an S3-compatible service. Credentials come from the usual AWS
    ///   environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    ///   …); plain HTTP is allowed when the endpoint is `http://`. Keys live
    ///   under `prefix` when one is given.
    pub fn from_url(url: &str) -> Result<Self> {
        let parsed = url::Url::parse(url)
            .map_err(|e| StoreError::Config(format!("invalid blob store URL '{url}': {e}")))?;
        match parsed.scheme() {
            "file" => {
                let dir = parsed.to_file_path().map_err(|()| {
                    StoreError::Config(format!(
                        "blob store URL '{url}' must name an absolute directory (file:///abs/dir)"
                    ))
                })?;
                Self::local(&dir)
            }
            "s3" => Self::s3(&parsed),
            other => Err(StoreError::Config(format!(
                "unsupported blob store scheme '{other}' in '{url}': expected file:///DIR or s3://BUCKET"
            ))),
        }
    }

    /// A store in the local directory `dir`, created when missing.
    pub fn local(dir: &FsPath) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| {
            StoreError::Config(format!(
                "cannot create blob directory {}: {e}",
                dir.display()
            ))
        })?;
        let store = LocalFileSystem::new_with_prefix(dir)
            .map_err(StoreError::Blob)?
            .with_automatic_cleanup(true);
        let summary = format!("file {}", dir.display());
        Ok(Self::new(Arc::new(store), summary))
    }

    fn s3(url: &url::Url) -> Result<Self> {
        let bucket = url
            .host_str()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| StoreError::Config(format!("blob store URL '{url}' names no bucket")))?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        let mut endpoint = None;
        for (key, value) in url.query_pairs() {
            match &*key {
                "endpoint" => {
                    builder = builder
                        .with_endpoint(value.as_ref())
                        .with_allow_http(value.starts_with("http://"));
                    endpoint = Some(value.into_owned());
                }
                "region" => builder = builder.with_region(value.as_ref()),
                other => {
                    return Err(StoreError::Config(format!(
                        "unknown parameter '{other}' in blob store URL (expected endpoint, region)"
                    )))
                }
            }
        }
        let s3 = builder.build().map_err(StoreError::Blob)?;
        let prefix = url.path().trim_matches('/');
        let mut summary = format!("s3 {bucket}");
        if !prefix.is_empty() {
            summary.push('/');
            summary.push_str(prefix);
        }
        if let Some(endpoint) = endpoint {
            summary.push_str(&format!(" at {endpoint}"));
        }
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, parse_location(prefix)?))
        };
        Ok(Self::new(store, summary))
    }

    /// One line for logs and `/v1/runners`.
    pub fn summary(&self) -> String {
        self.summary.clone()
    }

    /// Stores `bytes` at `location` (replacing what was there) and returns
    /// their hash and size.
    pub async fn put(&self, location: &str, bytes: Bytes) -> Result<StoredBlob> {
        let path = parse_location(location)?;
        let stored = StoredBlob {
            sha256: sha256_hex(&bytes),
            size: bytes.len() as u64,
            location: location.to_owned(),
        };
        self.store
            .put(&path, PutPayload::from_bytes(bytes))
            .await
            .map_err(StoreError::Blob)?;
        Ok(stored)
    }

    /// Reads `location` and checks it against the recorded size and SHA-256:
    /// [`StoreError::Integrity`] when either differs, `NotFound` (kind
    /// `"code package"`) when nothing is stored there.
    pub async fn get_verified(
        &self,
        location: &str,
        expected_sha256: &str,
        expected_size: u64,
    ) -> Result<Bytes> {
        let path = parse_location(location)?;
        let bytes = self
            .store
            .get(&path)
            .await
            .map_err(|e| blob_error(e, location))?
            .bytes()
            .await
            .map_err(|e| blob_error(e, location))?;
        let integrity = |detail: String| StoreError::Integrity {
            location: location.to_owned(),
            detail,
        };
        if bytes.len() as u64 != expected_size {
            return Err(integrity(format!(
                "size is {} bytes, expected {expected_size}",
                bytes.len()
            )));
        }
        let actual = sha256_hex(&bytes);
        if !actual.eq_ignore_ascii_case(expected_sha256) {
            return Err(integrity(format!(
                "SHA-256 is {actual}, expected {expected_sha256}"
            )));
        }
        Ok(bytes)
    }

    /// Copies `from` to `to` (replacing what was there). `NotFound` when
    /// `from` does not exist.
    pub async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let (source, target) = (parse_location(from)?, parse_location(to)?);
        self.store
            .copy(&source, &target)
            .await
            .map_err(|e| blob_error(e, from))
    }

    /// Deletes one object; deleting what is not there is not an error.
    pub async fn delete(&self, location: &str) -> Result<()> {
        let path = parse_location(location)?;
        match self.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(StoreError::Blob(e)),
        }
    }

    /// Deletes everything under `prefix` (whole path segments: `functions/a`
    /// does not touch `functions/ab/…`). Returns how many objects went.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        let prefix = parse_location(prefix)?;
        let locations = self
            .store
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .boxed();
        let deleted = self
            .store
            .delete_stream(locations)
            .try_fold(0u64, |n, _| async move { Ok(n + 1) })
            .await
            .map_err(StoreError::Blob)?;
        Ok(deleted)
    }
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn parse_location(location: &str) -> Result<Path> {
    let path = Path::parse(location)
        .map_err(|e| StoreError::Config(format!("invalid blob location '{location}': {e}")))?;
    if path.as_ref().is_empty() {
        return Err(StoreError::Config("empty blob location".to_owned()));
    }
    Ok(path)
}

fn blob_error(e: object_store::Error, location: &str) -> StoreError {
    match e {
        object_store::Error::NotFound { .. } => StoreError::NotFound {
            kind: "code package",
            id: location.to_owned(),
        },
        other => StoreError::Blob(other),
    }
}
