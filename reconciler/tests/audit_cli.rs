//! `centossrv audit verify` and `centossrv audit export`, run as the real binary against a
//! log written through the store API and then tampered with through raw SQL, on SQLite and
//! (with DATABASE_URL) PostgreSQL.
#![allow(clippy::unwrap_used)]

mod audit_support;

use audit_support::{TestDb, centossrv, centossrv_env, each_backend, seed};
use serde_json::Value;

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn verify(db: &TestDb, format: &str) -> std::process::Output {
    centossrv(&["audit", "verify", "--database", &db.url, "--format", format])
}

#[tokio::test]
async fn an_intact_log_verifies() {
    each_backend(|db| async move {
        let store = db.open().await;
        let out = verify(&db, "human");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            stdout(&out),
            format!(
                "intact: 0 entries, head {}\n",
                store::audit_chain::GENESIS_HASH
            )
        );
        let entries = seed(&store, 5).await;
        store.close().await;
        let out = verify(&db, "human");
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(
            stdout(&out),
            format!("intact: 5 entries, head {}\n", entries[4].hash)
        );
        let out = verify(&db, "json");
        assert_eq!(out.status.code(), Some(0));
        let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"format": 1, "intact": true, "entries": 5,
                "head": entries[4].hash, "broken": null})
        );
        // The embedded store found as `serve` finds it: the data directory.
        if let Some(dir) = &db.data_dir {
            let out = centossrv(&["audit", "verify", "--data-dir", dir.to_str().unwrap()]);
            assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
            assert!(
                stdout(&out).starts_with("intact: 5 entries"),
                "{}",
                stdout(&out)
            );
        }
    })
    .await;
}

/// Arguments and centossrv environment variables of one way to name the database.
type Way<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>);

#[tokio::test]
async fn the_database_is_found_as_serve_finds_it() {
    use std::os::unix::fs::PermissionsExt as _;
    each_backend(|db| async move {
        let store = db.open().await;
        seed(&store, 3).await;
        store.close().await;
        let dir = tempfile::tempdir().unwrap();
        let url_file = dir.path().join("db-url");
        std::fs::write(&url_file, format!("{}\n", db.url)).unwrap();
        std::fs::set_permissions(&url_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let open_file = dir.path().join("db-url-open");
        std::fs::write(&open_file, &db.url).unwrap();
        std::fs::set_permissions(&open_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        // A whole serve configuration: only its database keys matter here.
        let config = dir.path().join("serve.toml");
        let location = match &db.data_dir {
            Some(data) => format!("data_dir = \"{}\"", data.display()),
            None => format!("database_url = \"{}\"", db.url),
        };
        std::fs::write(
            &config,
            format!("repo = \"/srv/fleet\"\nbranch = \"main\"\n{location}\n\n[forge]\nkind = \"github\"\n"),
        )
        .unwrap();
        let url_file = url_file.to_str().unwrap();
        let config = config.to_str().unwrap();
        let mut ways: Vec<Way> = vec![
            (vec!["--database", &db.url], vec![]),
            (vec!["--database-url", &db.url], vec![]),
            (vec!["--database-url-file", url_file], vec![]),
            (vec!["--config", config], vec![]),
            (vec![], vec![("CENTOSSRV_DATABASE_URL", db.url.as_str())]),
            (vec![], vec![("CENTOSSRV_CONFIG", config)]),
        ];
        if let Some(data) = &db.data_dir {
            let data = data.to_str().unwrap();
            ways.push((vec!["--data-dir", data], vec![]));
            ways.push((vec![], vec![("CENTOSSRV_DATA_DIR", data)]));
        }
        for (args, env) in &ways {
            let mut all = vec!["audit", "verify"];
            all.extend(args);
            let out = centossrv_env(&all, env);
            assert_eq!(out.status.code(), Some(0), "{args:?} {env:?}: {}", stderr(&out));
            assert!(stdout(&out).starts_with("intact: 3 entries, head sha256:"), "{args:?} {env:?}");
            all[1] = "export";
            let out = centossrv_env(&all, env);
            assert_eq!(out.status.code(), Some(0), "{args:?} {env:?}: {}", stderr(&out));
            assert_eq!(stdout(&out).lines().count(), 3, "{args:?} {env:?}");
        }
        let out = centossrv(&["audit", "verify", "--database-url-file", open_file.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("readable by group or other"), "{}", stderr(&out));
        let out = centossrv(&["audit", "verify", "--database", &db.url, "--database-url-file", url_file]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("not both"), "{}", stderr(&out));
    })
    .await;
}

/// One way to tamper with a log of five entries, and what `verify` must say.
struct Tamper {
    name: &'static str,
    sql: &'static str,
    seq: i64,
    kind: &'static str,
    /// Also in the first line of the human output.
    says: &'static str,
    /// Expected and found hash lines: (index of the entry whose hash is expected, found is
    /// computed by the test) when the break is about a hash.
    hashes: Option<Hashes>,
}

#[derive(Clone, Copy)]
enum Hashes {
    /// Expected: entry N's recorded hash; found: what its tampered content hashes to.
    Content(usize),
    /// Expected: the head row's hash as tampered; found: entry N's hash.
    Head(usize),
}

const TAMPERING: &[Tamper] = &[
    Tamper {
        name: "a column changed",
        sql: "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3",
        seq: 3,
        kind: "altered",
        says: "its `actor` column differs from its hashed content",
        hashes: None,
    },
    Tamper {
        name: "the hashed content changed",
        sql: "UPDATE audit_log SET content = replace(content, 'web-2', 'web-9') WHERE seq = 2",
        seq: 2,
        kind: "altered",
        says: "its hash does not match its content and previous hash",
        hashes: Some(Hashes::Content(2)),
    },
    Tamper {
        name: "details changed",
        sql: "UPDATE audit_log SET details = '{\"n\":99}' WHERE seq = 4",
        seq: 4,
        kind: "altered",
        says: "its `details` column differs",
        hashes: None,
    },
    Tamper {
        name: "an entry deleted",
        sql: "DELETE FROM audit_log WHERE seq = 3",
        seq: 3,
        kind: "removed",
        says: "entry 3 is missing",
        hashes: None,
    },
    Tamper {
        name: "the first entry deleted",
        sql: "DELETE FROM audit_log WHERE seq = 1",
        seq: 1,
        kind: "removed",
        says: "entry 1 is missing",
        hashes: None,
    },
    Tamper {
        name: "two entries deleted",
        sql: "DELETE FROM audit_log WHERE seq IN (2, 3)",
        seq: 2,
        kind: "removed",
        says: "entries 2 to 3 are missing",
        hashes: None,
    },
    Tamper {
        name: "the last entry deleted",
        sql: "DELETE FROM audit_log WHERE seq = 5",
        seq: 5,
        kind: "removed",
        says: "the log ends at entry 4 but the head records entry 5",
        hashes: None,
    },
    Tamper {
        name: "two entries swapped",
        sql: "UPDATE audit_log SET seq = -2 WHERE seq = 2; \
              UPDATE audit_log SET seq = 2 WHERE seq = 4; \
              UPDATE audit_log SET seq = 4 WHERE seq = -2;",
        seq: 2,
        kind: "reordered",
        says: "the row at position 2 holds the entry written as 4",
        hashes: None,
    },
    Tamper {
        name: "the head rewritten",
        sql: "UPDATE audit_head SET hash = 'sha256:feed' WHERE id = 1",
        seq: 5,
        kind: "altered",
        says: "the head records entry 5 with hash sha256:feed",
        hashes: Some(Hashes::Head(5)),
    },
];

#[tokio::test]
async fn verify_names_the_first_altered_removed_or_reordered_entry() {
    for case in TAMPERING {
        each_backend(move |db| async move {
            let store = db.open().await;
            let entries = seed(&store, 5).await;
            store.close().await;
            db.drop_audit_guards().await;
            db.exec(case.sql).await;
            let (expected, found) = match case.hashes {
                Some(Hashes::Content(n)) => {
                    let content = db
                        .text(&format!("SELECT content FROM audit_log WHERE seq = {n}"))
                        .await;
                    let found = state::digest::sha256(
                        format!("centossrv-audit\n{}\n{content}", entries[n - 1].prev_hash)
                            .as_bytes(),
                    );
                    (Some(entries[n - 1].hash.clone()), Some(found))
                }
                Some(Hashes::Head(n)) => (
                    Some("sha256:feed".to_owned()),
                    Some(entries[n - 1].hash.clone()),
                ),
                None => (None, None),
            };

            let out = verify(&db, "human");
            let text = stdout(&out);
            let context = format!("{} on {}:\n{text}{}", case.name, db.name(), stderr(&out));
            assert_eq!(out.status.code(), Some(1), "{context}");
            let first = text.lines().next().unwrap_or_default();
            assert!(
                first.starts_with(&format!("broken: entry {} {}: ", case.seq, case.kind)),
                "{context}"
            );
            assert!(first.contains(case.says), "{context}");
            match (&expected, &found) {
                (Some(e), Some(f)) => {
                    assert!(
                        text.contains(&format!("\n  expected hash: {e}\n")),
                        "{context}"
                    );
                    assert!(
                        text.contains(&format!("\n  found hash:    {f}\n")),
                        "{context}"
                    );
                }
                _ => assert_eq!(text.lines().count(), 1, "{context}"),
            }

            let out = verify(&db, "json");
            assert_eq!(out.status.code(), Some(1), "{context}");
            let json: Value = serde_json::from_str(&stdout(&out)).unwrap();
            assert_eq!(json["intact"], false, "{context}");
            assert_eq!(json["broken"]["seq"], case.seq, "{context}");
            assert_eq!(json["broken"]["kind"], case.kind, "{context}");
            assert!(
                json["broken"]["detail"]
                    .as_str()
                    .unwrap()
                    .contains(case.says),
                "{context}"
            );
            assert_eq!(
                json["broken"]["expected_hash"].as_str(),
                expected.as_deref(),
                "{context}"
            );
            assert_eq!(
                json["broken"]["found_hash"].as_str(),
                found.as_deref(),
                "{context}"
            );
        })
        .await;
    }
}

#[test]
fn errors_exit_2_with_a_clear_message_and_no_password() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nothing-here");
    let cases: &[(&[&str], &str)] = &[
        (
            &["audit", "verify", "--database", "mysql://u:hunter2@db/x"],
            "unsupported database URL",
        ),
        (
            &[
                "audit",
                "verify",
                "--database",
                "postgres://u:hunter2@127.0.0.1:1/x",
            ],
            "cannot connect",
        ),
        (
            &["audit", "verify", "--data-dir", missing.to_str().unwrap()],
            "no audit log database at",
        ),
        (
            &["audit", "export", "--data-dir", missing.to_str().unwrap()],
            "no audit log database at",
        ),
        (
            &[
                "audit",
                "export",
                "--database",
                "sqlite:///nonexistent/dir/x.db",
            ],
            "cannot connect",
        ),
        (
            &[
                "audit",
                "export",
                "--since=-3",
                "--database",
                "sqlite:///x.db",
            ],
            "sequence numbers start at 1",
        ),
    ];
    for (args, says) in cases {
        let out = centossrv(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(says),
            "{args:?}: {err}"
        );
        assert!(!err.contains("hunter2"), "{args:?}: password in {err}");
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    assert!(!missing.exists(), "verification created a database");
}

#[tokio::test]
async fn export_writes_every_entry_as_a_json_line_with_recomputable_hashes() {
    each_backend(|db| async move {
        let store = db.open().await;
        // More than one page (1,000 entries per read).
        let entries = seed(&store, 2_345).await;
        store.close().await;

        let out = centossrv(&[
            "audit",
            "export",
            "--format",
            "jsonl",
            "--database",
            &db.url,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("exported 2345 audit entries"),
            "{}",
            stderr(&out)
        );
        let text = stdout(&out);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), entries.len());
        let mut prev = store::audit_chain::GENESIS_HASH.to_owned();
        for (line, entry) in lines.iter().zip(&entries) {
            let json: Value = serde_json::from_str(line).unwrap();
            let keys: Vec<&str> = json
                .as_object()
                .unwrap()
                .keys()
                .map(String::as_str)
                .collect();
            assert_eq!(
                keys,
                [
                    "format",
                    "seq",
                    "at",
                    "actor",
                    "action",
                    "target",
                    "commit",
                    "outcome",
                    "details",
                    "prev_hash",
                    "hash"
                ]
            );
            assert_eq!(json["format"], 1);
            assert_eq!(json["seq"], entry.seq);
            assert_eq!(json["hash"], entry.hash.as_str());
            assert_eq!(json["prev_hash"], prev.as_str());
            assert_eq!(json["actor"], entry.record.actor.as_str());
            assert_eq!(json["commit"].as_str(), entry.record.commit.as_deref());
            assert_eq!(json["details"], entry.record.details);
            let at = chrono::DateTime::parse_from_rfc3339(json["at"].as_str().unwrap()).unwrap();
            assert_eq!(at, entry.at);
            // Anyone can recompute the chain from the lines alone (docs/audit.md).
            let content = serde_json::json!({
                "v": 1, "seq": json["seq"], "at": json["at"], "actor": json["actor"],
                "action": json["action"], "target": json["target"], "commit": json["commit"],
                "outcome": json["outcome"], "details": json["details"],
            });
            let hash = state::digest::sha256(
                format!(
                    "centossrv-audit\n{}\n{content}",
                    json["prev_hash"].as_str().unwrap()
                )
                .as_bytes(),
            );
            assert_eq!(hash, entry.hash, "entry {} recomputed", entry.seq);
            prev = entry.hash.clone();
        }

        // --since: only what came after; --output: the same lines in a file.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("audit.jsonl");
        let out = centossrv(&[
            "audit",
            "export",
            "--since",
            "2000",
            "--output",
            file.to_str().unwrap(),
            "--database",
            &db.url,
        ]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert!(stdout(&out).is_empty());
        let written = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            written,
            lines[2000..]
                .iter()
                .map(|l| format!("{l}\n"))
                .collect::<String>()
        );
        let out = centossrv(&["audit", "export", "--since", "2345", "--database", &db.url]);
        assert_eq!(out.status.code(), Some(0));
        assert!(stdout(&out).is_empty());
        assert!(stderr(&out).contains("exported 0 audit entries"));
    })
    .await;
}
