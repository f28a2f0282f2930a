//! Off-host copies against a real S3-compatible server: moto's, started by the test bed
//! (`fleet_tests::s3::TestS3`; with authentication enforced where credentials are
//! tested). Nothing mocks HTTP.

use std::path::{Path, PathBuf};

use fleet_backup::remote::{Error, MIN_PART_SIZE, RemoteSettings, RemoteStore};
use fleet_backup::{ArchiveName, BackupName, RetentionPolicy, Sha256};
use fleet_tests::s3::{REGION, TestS3};
use object_store::{ObjectStoreExt as _, PutPayload, path::Path as ObjectPath};
use sha2::Digest as _;

/// A store for `s3`'s bucket under `prefix`, with credentials from a file of profile
/// `test` written into `dir` (the way an operator's `~/.aws/credentials` is read).
fn store(s3: &TestS3, dir: &Path, prefix: &str) -> RemoteStore {
    let file = s3.write_credentials_file(dir, "test").unwrap();
    store_with(s3, prefix, file)
}

fn store_with(s3: &TestS3, prefix: &str, credentials_file: PathBuf) -> RemoteStore {
    let mut settings = RemoteSettings::new(s3.url(prefix).parse().unwrap());
    settings.endpoint = Some(s3.endpoint());
    settings.region = Some(REGION.to_owned());
    settings.profile = Some("test".to_owned());
    settings.credentials_file = Some(credentials_file);
    RemoteStore::new(&settings).unwrap()
}

/// Writes `size` pseudo-random bytes as archive `name` in `dir`; returns its path and
/// SHA-256.
fn archive(dir: &Path, name: &str, size: usize) -> (PathBuf, Sha256) {
    let mut content = Vec::with_capacity(size);
    let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ size as u64;
    while content.len() < size {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        content.extend_from_slice(&state.to_le_bytes());
    }
    content.truncate(size);
    let path = dir.join(name);
    std::fs::write(&path, &content).unwrap();
    (path, Sha256(sha2::Sha256::digest(&content).into()))
}

fn names(archives: &[fleet_backup::remote::RemoteArchive]) -> Vec<String> {
    archives.iter().map(|a| a.name.to_string()).collect()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn upload_list_download_and_delete_round_trip() {
    let s3 = TestS3::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let remote = store(&s3, dir.path(), "fleet/host1");
    remote.check().await.unwrap();
    let (first, first_sha) = archive(dir.path(), "shop-20250102-030405.tar.zst", 1000);
    let (second, _) = archive(dir.path(), "shop-20250103-030405.tar.zst", 2000);
    let (_, _) = archive(dir.path(), "other-20250103-030405.tar.zst", 10);

    let uploaded = remote.upload(&first, Some(first_sha)).await.unwrap();
    assert_eq!(
        uploaded.key,
        "fleet/host1/shop/shop-20250102-030405.tar.zst"
    );
    assert_eq!(uploaded.size, 1000);
    // Without an expected SHA-256 the file is hashed first; the SHA-256 travels with it.
    let metadata = std::collections::BTreeMap::from([
        ("reason".to_owned(), "pre-update".to_owned()),
        ("image".to_owned(), "registry.example/shop".to_owned()),
    ]);
    let second_copy = remote
        .upload_with_metadata(&second, None, &metadata)
        .await
        .unwrap();
    let head = remote.head(&second_copy.key).await.unwrap();
    assert_eq!(head.metadata, metadata, "metadata travels with the object");
    assert_eq!(head.size, 2000);
    let bad = std::collections::BTreeMap::from([("Not OK".to_owned(), "x".to_owned())]);
    assert!(matches!(
        remote.upload_with_metadata(&second, None, &bad).await,
        Err(Error::Settings { .. })
    ));
    assert_eq!(
        remote.stored_sha256(&uploaded.key).await.unwrap(),
        Some(first_sha)
    );
    remote
        .upload(&dir.path().join("other-20250103-030405.tar.zst"), None)
        .await
        .unwrap();

    let shop = BackupName::new("shop").unwrap();
    let listed = remote.list(&shop).await.unwrap();
    assert_eq!(
        names(&listed),
        [
            "shop-20250102-030405.tar.zst",
            "shop-20250103-030405.tar.zst"
        ],
        "oldest first, and only shop's archives"
    );
    assert_eq!(listed[1].size, 2000);
    let age = jiff::Timestamp::now().duration_since(listed[0].last_modified);
    assert!(age.as_secs() < 600, "last modified just now: {age:?}");

    // Download, verified by the SHA-256 stored with the object.
    let restore = tempfile::tempdir().unwrap();
    let destination = restore.path().join("fetched.tar.zst");
    let sha = remote
        .download(&uploaded.key, &destination, None)
        .await
        .unwrap();
    assert_eq!(sha, first_sha);
    assert_eq!(
        std::fs::read(&destination).unwrap(),
        std::fs::read(&first).unwrap()
    );
    assert_eq!(remote.verify(&uploaded.key, None).await.unwrap(), first_sha);

    remote.delete(&second_copy.key).await.unwrap();
    assert_eq!(
        names(&remote.list(&shop).await.unwrap()),
        ["shop-20250102-030405.tar.zst"]
    );
    // Deleting what is gone is no error.
    remote.delete(&second_copy.key).await.unwrap();
    let error = remote
        .download(&second_copy.key, &restore.path().join("gone"), None)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::NotFound { .. }), "{error}");
    assert_eq!(files_in(restore.path()), ["fetched.tar.zst"]);
}

/// A file larger than the part size goes up in parts (S3's minimum part is 5 MiB, which
/// moto enforces: three parts here) and comes back whole.
#[tokio::test]
async fn a_large_archive_goes_up_in_parts() {
    let s3 = TestS3::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let remote = store(&s3, dir.path(), "")
        .with_part_size(MIN_PART_SIZE)
        .unwrap();
    let size = 2 * MIN_PART_SIZE + 12345;
    let (path, sha) = archive(dir.path(), "big-20250102-030405.tar.zst", size);
    let uploaded = remote.upload(&path, Some(sha)).await.unwrap();
    assert_eq!(uploaded.key, "big/big-20250102-030405.tar.zst");
    assert_eq!(uploaded.size, size as u64);
    let meta = remote
        .object_store()
        .head(&ObjectPath::from(uploaded.key.as_str()))
        .await
        .unwrap();
    // A multipart upload's ETag is the MD5 of the parts' MD5s, then `-` and their count.
    assert!(
        meta.e_tag
            .as_deref()
            .unwrap_or_default()
            .trim_matches('"')
            .ends_with("-3"),
        "three parts: {:?}",
        meta.e_tag
    );
    let fetched = dir.path().join("fetched");
    remote
        .download(&uploaded.key, &fetched, Some(sha))
        .await
        .unwrap();
    assert_eq!(std::fs::metadata(&fetched).unwrap().len(), size as u64);
    assert!(
        remote.clone().with_part_size(MIN_PART_SIZE - 1).is_err(),
        "parts below S3's minimum are refused"
    );
}

/// An object changed in the store after upload is caught on download, and nothing of it
/// is left on disk.
#[tokio::test]
async fn a_corrupted_remote_object_is_refused_on_download() {
    let s3 = TestS3::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let remote = store(&s3, dir.path(), "p");
    let (path, sha) = archive(dir.path(), "shop-20250102-030405.tar.zst", 4096);
    let uploaded = remote.upload(&path, Some(sha)).await.unwrap();
    // Overwrite the object's bytes directly, keeping its metadata.
    let mut content = std::fs::read(&path).unwrap();
    content[100] ^= 0xff;
    let mut attributes = object_store::Attributes::new();
    attributes.insert(
        object_store::Attribute::Metadata("fleet-sha256".into()),
        sha.to_string().into(),
    );
    remote
        .object_store()
        .put_opts(
            &ObjectPath::from(uploaded.key.as_str()),
            PutPayload::from(content),
            attributes.into(),
        )
        .await
        .unwrap();

    let restore = tempfile::tempdir().unwrap();
    let destination = restore.path().join("fetched.tar.zst");
    let error = remote
        .download(&uploaded.key, &destination, None)
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        matches!(error, Error::Checksum { expected, .. } if expected == sha),
        "{message}"
    );
    assert!(
        message.contains("object p/shop/shop-20250102-030405.tar.zst has SHA-256")
            && message.contains(&format!("expected {sha}")),
        "{message}"
    );
    assert!(files_in(restore.path()).is_empty(), "nothing left behind");
    assert!(matches!(
        remote.verify(&uploaded.key, None).await.unwrap_err(),
        Error::Checksum { .. }
    ));
}

/// An upload whose bytes are not the archive recorded (here: a wrong expected SHA-256,
/// as a file changed since it was recorded would give) is deleted and is an error.
#[tokio::test]
async fn an_upload_that_does_not_verify_is_deleted() {
    let s3 = TestS3::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let remote = store(&s3, dir.path(), "p");
    let (path, _) = archive(dir.path(), "shop-20250102-030405.tar.zst", 4096);
    let error = remote
        .upload(&path, Some(Sha256([7; 32])))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Checksum { .. }), "{error}");
    let shop = BackupName::new("shop").unwrap();
    assert!(
        remote.list(&shop).await.unwrap().is_empty(),
        "the bad copy was deleted"
    );
}

#[tokio::test]
async fn retention_is_applied_remotely() {
    let s3 = TestS3::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let remote = store(&s3, dir.path(), "");
    for day in 1..=4 {
        let (path, sha) = archive(dir.path(), &format!("shop-2025010{day}-000000.tar.zst"), 64);
        remote.upload(&path, Some(sha)).await.unwrap();
    }
    let shop = BackupName::new("shop").unwrap();
    let policy = RetentionPolicy::keep_last(2.try_into().unwrap());
    let now = jiff::Timestamp::now();
    let would = remote.prune(&shop, &policy, now, true).await.unwrap();
    assert_eq!(
        names(&would),
        [
            "shop-20250101-000000.tar.zst",
            "shop-20250102-000000.tar.zst"
        ]
    );
    assert_eq!(
        remote.list(&shop).await.unwrap().len(),
        4,
        "a dry run deletes nothing"
    );
    let pruned = remote.prune(&shop, &policy, now, false).await.unwrap();
    assert_eq!(names(&pruned), names(&would));
    assert_eq!(
        names(&remote.list(&shop).await.unwrap()),
        [
            "shop-20250103-000000.tar.zst",
            "shop-20250104-000000.tar.zst"
        ]
    );
    assert!(ArchiveName::parse(&names(&pruned)[0]).is_some());
}

/// Wrong keys are refused by the server (moto with authentication enforced, as AWS
/// does); the error names the bucket, the endpoint, the store's reason and where the
/// credentials came from.
#[tokio::test]
async fn refused_credentials_say_what_was_wrong() {
    let s3 = TestS3::start_enforcing_auth().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = s3.endpoint();
    let unknown = s3
        .write_credentials_with(dir.path(), "test", "AKIAUNKNOWN000000000", "secret")
        .unwrap();
    let error = store_with(&s3, "p", unknown.clone())
        .check()
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Refused { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        format!(
            "{url} at {endpoint} refused the credentials from profile \"test\" in {file} \
             (InvalidAccessKeyId): check the access key and secret, or the policy granting \
             them access to the bucket",
            url = s3.url("p"),
            file = unknown.display(),
        )
    );
    let (path, _) = archive(dir.path(), "shop-20250102-030405.tar.zst", 10);
    // The right key is accepted (moto checks its signature)...
    store(&s3, dir.path(), "p")
        .upload(&path, None)
        .await
        .unwrap();
    // ...and a wrong secret is not.
    let wrong_secret = s3
        .write_credentials_with(dir.path(), "test", s3.access_key_id(), "not-the-secret")
        .unwrap();
    let remote = store_with(&s3, "p", wrong_secret);
    let error = remote.upload(&path, None).await.unwrap_err();
    assert!(
        error.to_string().contains("(SignatureDoesNotMatch)"),
        "{error}"
    );
}

#[tokio::test]
async fn a_missing_bucket_and_an_unreachable_endpoint_are_named() {
    let s3 = TestS3::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = s3.write_credentials_file(dir.path(), "test").unwrap();
    let mut settings = RemoteSettings::new("s3://no-such-bucket/p".parse().unwrap());
    settings.endpoint = Some(s3.endpoint());
    settings.profile = Some("test".to_owned());
    settings.credentials_file = Some(file);
    let error = RemoteStore::new(&settings)
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "bucket no-such-bucket does not exist at {}: create it, or fix the url",
            s3.endpoint()
        )
    );
    // A port nothing listens on.
    let closed = fleet_tests::net::free_port().unwrap();
    settings.endpoint = Some(format!("http://127.0.0.1:{closed}"));
    let error = RemoteStore::new(&settings)
        .unwrap()
        .check()
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "cannot reach http://127.0.0.1:{closed} (for s3://no-such-bucket/p): check the \
             endpoint URL and that the store runs"
        )
    );
}
