//! `centossrv user ...` and `centossrv token ...` through the real binary on a real store:
//! the first admin, passwords from stdin or a file (never the command line), roles,
//! tokens printed once, clear refusals with exit 1, and an audit entry per change.

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

fn centossrv(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_centossrv"))
        .args(args)
        .env("USER", "ops-lead")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run centossrv");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    drop(child.stdin.take());
    child.wait_with_output().expect("wait")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn users_roles_and_tokens_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().to_str().expect("utf-8");
    let pw = "first admin password\n";
    let o = centossrv(
        &[
            "user",
            "add",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
            "--data-dir",
            data,
        ],
        Some(pw),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("created local user `alice` with role admin"));
    // Refusals: exists, short password, bad name, unknown role, no password source.
    for (args, stdin, says) in [
        (
            vec!["user", "add", "alice", "--password-stdin"],
            Some(pw),
            "exists already",
        ),
        (
            vec!["user", "add", "bob", "--password-stdin"],
            Some("short\n"),
            "at least 12",
        ),
        (
            vec!["user", "add", "b o b", "--directory"],
            None,
            "user name",
        ),
        (
            vec!["user", "role", "alice", "root"],
            None,
            "unknown role `root`",
        ),
        (
            vec!["user", "add", "carol"],
            None,
            "--password-file FILE or --password-stdin",
        ),
        (
            vec!["token", "create", "--user", "nobody", "--label", "x"],
            None,
            "no user `nobody`",
        ),
    ] {
        let mut args = args;
        args.extend(["--data-dir", data]);
        let o = centossrv(&args, stdin);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", text(&o));
        assert!(text(&o).contains(says), "{args:?}: {}", text(&o));
    }
    let o = centossrv(
        &["user", "add", "dana", "--directory", "--data-dir", data],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = centossrv(
        &[
            "user",
            "role",
            "group:fleet-ops",
            "operator",
            "--data-dir",
            data,
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    // A token is printed once on stdout (the rest on stderr).
    let o = centossrv(
        &[
            "token",
            "create",
            "--user",
            "alice",
            "--label",
            "ci",
            "--days",
            "7",
            "--data-dir",
            data,
        ],
        None,
    );
    assert!(o.status.success(), "{}", text(&o));
    let token = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    assert!(
        token.starts_with("csat_") && !token.contains(' '),
        "{token}"
    );
    let o = centossrv(&["user", "list", "--data-dir", data], None);
    let list = text(&o);
    assert!(
        list.contains("alice") && list.contains("admin (cli)"),
        "{list}"
    );
    assert!(
        list.contains("dana") && list.contains("directory"),
        "{list}"
    );
    assert!(
        list.contains("group:fleet-ops") && list.contains("operator (cli)"),
        "{list}"
    );
    let o = centossrv(&["token", "list", "--data-dir", data], None);
    let tokens = text(&o);
    assert!(
        tokens.contains("alice") && tokens.contains("active"),
        "{tokens}"
    );
    assert!(!tokens.contains(&token), "a listing never shows the token");
    let id = tokens
        .lines()
        .find(|l| l.starts_with("tok_"))
        .and_then(|l| l.split_whitespace().next())
        .expect("token id")
        .to_owned();
    // The store agrees: the token authenticates, the password verifies, then revocation.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let store = store::Store::open_data_dir(dir.path())
            .await
            .expect("store");
        let found = store.authenticate_api_token(&token).await.expect("auth");
        assert_eq!(found.map(|t| t.user), Some("alice".to_owned()));
        let alice = store.user("alice").await.expect("read").expect("alice");
        let phc = alice.password_hash.expect("hash");
        assert!(reconciler::auth::password::verify(
            "first admin password",
            &phc
        ));
        store.close().await;
    });
    let o = centossrv(&["token", "revoke", &id, "--data-dir", data], None);
    assert!(o.status.success(), "{}", text(&o));
    let o = centossrv(&["token", "revoke", &id, "--data-dir", data], None);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    rt.block_on(async {
        let store = store::Store::open_data_dir(dir.path())
            .await
            .expect("store");
        assert_eq!(
            store.authenticate_api_token(&token).await.expect("auth"),
            None
        );
        let actions: Vec<String> = store
            .audit_list(None, 100)
            .await
            .expect("audit")
            .items
            .into_iter()
            .map(|e| format!("{} {} {}", e.record.actor, e.record.action, e.record.target))
            .collect();
        assert_eq!(
            actions,
            [
                "cli:ops-lead user.create alice",
                "cli:ops-lead user.create dana",
                "cli:ops-lead user.role group:fleet-ops",
                "cli:ops-lead token.create alice",
                format!("cli:ops-lead token.revoke {id}").as_str(),
            ]
        );
        store.close().await;
    });
}
