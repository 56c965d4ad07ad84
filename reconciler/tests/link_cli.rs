//! `centossrv certs init` and `centossrv enroll-token create`, run as the real binary.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};

fn centossrv(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_centossrv"))
        .args(args)
        .env_remove("CENTOSSRV_DATABASE_URL")
        .output()
        .unwrap()
}

#[test]
fn certs_init_writes_four_files_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("tls");
    let certs = certs.to_str().unwrap();
    let out = centossrv(&["certs", "init", "--dir", certs, "--host", "reconciler.test"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (file, mode) in [
        ("ca.pem", 0o644),
        ("ca-key.pem", 0o600),
        ("server.pem", 0o644),
        ("server-key.pem", 0o600),
    ] {
        let meta = std::fs::metadata(dir.path().join("tls").join(file)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, mode, "{file}");
    }
    let key = std::fs::read(dir.path().join("tls/ca-key.pem")).unwrap();
    let again = centossrv(&["certs", "init", "--dir", certs]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    assert_eq!(
        std::fs::read(dir.path().join("tls/ca-key.pem")).unwrap(),
        key
    );
    let forced = centossrv(&["certs", "init", "--dir", certs, "--force"]);
    assert!(forced.status.success());
    assert_ne!(
        std::fs::read(dir.path().join("tls/ca-key.pem")).unwrap(),
        key
    );
    let bad = centossrv(&["certs", "init", "--dir", certs, "--force", "--host", "a b"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[tokio::test]
async fn enroll_token_create_prints_the_token_once_and_audits() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let out = centossrv(&[
        "enroll-token",
        "create",
        "--ttl",
        "2h",
        "--data-dir",
        data,
        "--created-by",
        "alice",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let token = stdout.trim_end();
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(token.starts_with("cset_"), "{token}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(&token[5..]));

    let store = store::Store::open_data_dir(dir.path()).await.unwrap();
    let entries = store.audit_list(None, 10).await.unwrap().items;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].record.action, "enroll_token.create");
    assert_eq!(entries[0].record.actor, "alice");
    assert!(!format!("{entries:?}").contains(&token[5..]));
    let credential = store.redeem_enrollment_token(token, "web-1").await.unwrap();
    assert_eq!(
        store
            .authenticate_node(&credential)
            .await
            .unwrap()
            .as_deref(),
        Some("web-1")
    );
    store.close().await;

    for bad in [
        vec!["enroll-token", "create", "--ttl", "0s", "--data-dir", data],
        vec![
            "enroll-token",
            "create",
            "--ttl",
            "soon",
            "--data-dir",
            data,
        ],
        vec!["enroll-token", "create"],
    ] {
        let out = centossrv(&bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        assert!(out.stdout.is_empty(), "{bad:?}");
    }
}
