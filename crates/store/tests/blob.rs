//! The blob store on a local directory: round trips, integrity checks,
//! copies and prefix deletion.

use bytes::Bytes;

use hotswap_store::blob::sha256_hex;
use hotswap_store::{BlobStore, StoreError};

const CODE: &str = "functions/hello/versions/1/code.zip";

fn store() -> (tempfile::TempDir, BlobStore) {
    let dir = tempfile::tempdir().expect("temp dir");
    let blobs = BlobStore::local(&dir.path().join("blobs")).expect("local blob store");
    (dir, blobs)
}

fn integrity_detail<T: std::fmt::Debug>(result: hotswap_store::Result<T>) -> (String, String) {
    match result {
        Err(StoreError::Integrity { location, detail }) => (location, detail),
        other => panic!("expected Integrity, got {other:?}"),
    }
}

#[tokio::test]
async fn put_and_get_verified_round_trip() {
    let (_dir, blobs) = store();
    let bytes = Bytes::from_static(b"PK\x03\x04 not really a zip");
    let stored = blobs.put(CODE, bytes.clone()).await.unwrap();
    assert_eq!(stored.size, bytes.len() as u64);
    assert_eq!(stored.location, CODE);
    assert_eq!(stored.sha256, sha256_hex(&bytes));
    assert_eq!(stored.sha256.len(), 64);
    assert!(stored
        .sha256
        .chars()
        .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));

    let got = blobs
        .get_verified(CODE, &stored.sha256, stored.size)
        .await
        .unwrap();
    assert_eq!(got, bytes);
    // Upper-case hex is the same hash.
    let upper = stored.sha256.to_ascii_uppercase();
    assert_eq!(
        blobs.get_verified(CODE, &upper, stored.size).await.unwrap(),
        bytes
    );
}

#[test]
fn sha256_of_known_input() {
    assert_eq!(
        sha256_hex(b"abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[tokio::test]
async fn empty_package_round_trips() {
    let (_dir, blobs) = store();
    let stored = blobs.put(CODE, Bytes::new()).await.unwrap();
    assert_eq!(stored.size, 0);
    assert_eq!(
        stored.sha256,
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert!(blobs
        .get_verified(CODE, &stored.sha256, 0)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn hash_or_size_mismatch_is_an_integrity_error() {
    let (_dir, blobs) = store();
    let stored = blobs.put(CODE, Bytes::from_static(b"hello")).await.unwrap();

    let wrong_hash = sha256_hex(b"world");
    let (location, detail) =
        integrity_detail(blobs.get_verified(CODE, &wrong_hash, stored.size).await);
    assert_eq!(location, CODE);
    assert!(
        detail.contains(&stored.sha256) && detail.contains(&wrong_hash),
        "{detail}"
    );

    let (_, detail) = integrity_detail(blobs.get_verified(CODE, &stored.sha256, 6).await);
    assert_eq!(detail, "size is 5 bytes, expected 6");
}

#[tokio::test]
async fn tampered_file_on_disk_is_an_integrity_error() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = BlobStore::from_url(&format!("file://{}", dir.path().display())).unwrap();
    assert!(blobs.summary().starts_with("file "), "{}", blobs.summary());
    let stored = blobs
        .put(CODE, Bytes::from_static(b"original!"))
        .await
        .unwrap();

    let on_disk = dir.path().join(CODE);
    assert_eq!(std::fs::read(&on_disk).unwrap(), b"original!");
    // Same size, one byte changed: only the hash can tell.
    std::fs::write(&on_disk, b"original?").unwrap();
    let (_, detail) = integrity_detail(blobs.get_verified(CODE, &stored.sha256, stored.size).await);
    assert!(detail.starts_with("SHA-256 is "), "{detail}");
    // Truncated.
    std::fs::write(&on_disk, b"orig").unwrap();
    let (_, detail) = integrity_detail(blobs.get_verified(CODE, &stored.sha256, stored.size).await);
    assert_eq!(detail, "size is 4 bytes, expected 9");
}

#[tokio::test]
async fn missing_package_is_not_found() {
    let (_dir, blobs) = store();
    match blobs.get_verified(CODE, &sha256_hex(b""), 0).await {
        Err(StoreError::NotFound { kind, id }) => {
            assert_eq!(kind, "code package");
            assert_eq!(id, CODE);
        }
        other => panic!("expected NotFound, got {other:?}"),
    }
}

#[tokio::test]
async fn copy_then_delete_prefix() {
    let (_dir, blobs) = store();
    let latest = "functions/hello/versions/latest/code.zip";
    let stored = blobs
        .put(latest, Bytes::from_static(b"v1 code"))
        .await
        .unwrap();
    blobs.copy(latest, CODE).await.unwrap();
    assert_eq!(
        blobs
            .get_verified(CODE, &stored.sha256, stored.size)
            .await
            .unwrap(),
        Bytes::from_static(b"v1 code")
    );
    // A neighbour whose name extends the prefix is not under it.
    let neighbour = "functions/hello-world/versions/1/code.zip";
    let other = blobs
        .put(neighbour, Bytes::from_static(b"other"))
        .await
        .unwrap();

    assert_eq!(blobs.delete_prefix("functions/hello").await.unwrap(), 2);
    for gone in [latest, CODE] {
        assert!(matches!(
            blobs.get_verified(gone, &stored.sha256, stored.size).await,
            Err(StoreError::NotFound { .. })
        ));
    }
    assert_eq!(
        blobs
            .get_verified(neighbour, &other.sha256, other.size)
            .await
            .unwrap(),
        Bytes::from_static(b"other")
    );
    // Nothing left under the prefix: nothing to delete, no error.
    assert_eq!(blobs.delete_prefix("functions/hello").await.unwrap(), 0);
    assert_eq!(
        blobs
            .delete_prefix("functions/never-existed")
            .await
            .unwrap(),
        0
    );

    assert!(matches!(
        blobs.copy("functions/none/code.zip", CODE).await,
        Err(StoreError::NotFound {
            kind: "code package",
            ..
        })
    ));
}

#[test]
fn urls_are_checked() {
    for bad in [
        "ftp://host/dir",
        "file://relative",
        "not a url",
        "s3:///no-bucket",
    ] {
        assert!(
            matches!(BlobStore::from_url(bad), Err(StoreError::Config(_))),
            "{bad} should be a Config error"
        );
    }
    let s3 = BlobStore::from_url(
        "s3://code-bucket/hotswap?endpoint=http://127.0.0.1:9000&region=us-east-1",
    )
    .expect("an S3 store is configured without contacting it");
    assert_eq!(
        s3.summary(),
        "s3 code-bucket/hotswap at http://127.0.0.1:9000"
    );
}

#[tokio::test]
async fn invalid_locations_are_config_errors() {
    let (_dir, blobs) = store();
    for bad in ["", "functions/../etc/passwd", "a//b"] {
        assert!(
            matches!(
                blobs.put(bad, Bytes::new()).await,
                Err(StoreError::Config(_))
            ),
            "'{bad}' should be refused"
        );
    }
}
