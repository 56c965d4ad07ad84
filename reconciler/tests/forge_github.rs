//! The GitHub forge client against the strict fake GitHub (`forge-fake`), which checks every
//! request against GitHub's OpenAPI description: every `Forge` method, pagination, rate
//! limits, plain-token and GitHub App authentication, and that secrets stay out of `Debug`
//! and errors. Each test ends by asserting the fake saw no contract violation (the fake also
//! checks its own answers against the documented response schemas, so a violation-free run
//! means its answers were valid too).

use std::time::{Duration, Instant};

use forge_fake::github::FakeGitHub;
use reconciler::forge::github::{GitHub, GitHubAuth, GitHubConfig, StatusApi};
use reconciler::forge::{
    Actor, ChangeRequestState, CommitStatus, Conclusion, Forge, ForgeError, Permission,
};
use reconciler::secret::Secret;

const TOKEN: &str = "ghp_test-token-4f1c9e";
const LABEL: &str = "centossrv: destructive";

fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

async fn fake() -> FakeGitHub {
    init();
    let fake = FakeGitHub::start("acme", "fleet").await;
    fake.accept_token(TOKEN);
    fake
}

fn token_config(fake: &FakeGitHub) -> GitHubConfig {
    let mut config = GitHubConfig::new("acme", "fleet", GitHubAuth::Token(Secret::new(TOKEN)));
    config.api_url = fake.base_url();
    config.timeout = Duration::from_secs(10);
    config
}

fn client(config: GitHubConfig) -> GitHub {
    GitHub::new(config).expect("client")
}

fn assert_clean(fake: &FakeGitHub) {
    let violations = fake.violations();
    assert!(
        violations.is_empty(),
        "contract violations: {violations:#?}"
    );
}

fn actor(login: &str) -> Actor {
    Actor {
        login: login.to_owned(),
        id: 1,
    }
}

#[tokio::test]
async fn change_requests_comments_labels_permissions_and_issues() {
    let fake = fake().await;
    fake.add_pull(1, "head1", "base1", "main", "Add web nodes");
    fake.add_pull(2, "head2", "base2", "main", "Merged one");
    fake.add_pull(3, "head3", "base3", "release", "Closed one");
    fake.close_pull(2, true);
    fake.close_pull(3, false);
    let gh = client(token_config(&fake));

    let pr = gh.change_request(1).await.expect("pull 1");
    assert_eq!(pr.number, 1);
    assert_eq!(pr.title, "Add web nodes");
    assert_eq!(pr.state, ChangeRequestState::Open);
    assert_eq!(
        (pr.head_sha.as_str(), pr.base_sha.as_str()),
        ("head1", "base1")
    );
    assert_eq!(pr.base_ref, "main");
    assert!(pr.url.ends_with("/acme/fleet/pull/1"), "{}", pr.url);
    assert_eq!(
        gh.change_request(2).await.expect("2").state,
        ChangeRequestState::Merged
    );
    assert_eq!(
        gh.change_request(3).await.expect("3").state,
        ChangeRequestState::Closed
    );
    fake.set_pull_head(1, "head1b");
    assert_eq!(gh.change_request(1).await.expect("1").head_sha, "head1b");
    let err = gh.change_request(99).await.expect_err("no such pull");
    assert!(err.is_not_found(), "{err}");
    let open = gh.open_change_requests().await.expect("open");
    assert_eq!(open.iter().map(|c| c.number).collect::<Vec<_>>(), vec![1]);

    // Comments.
    let first = gh
        .create_comment(1, "plan: 3 changes")
        .await
        .expect("comment");
    assert_eq!(first.body, "plan: 3 changes");
    let second = gh.create_comment(1, "second").await.expect("comment");
    gh.update_comment(1, first.id, "plan: 4 changes")
        .await
        .expect("update");
    let listed = gh.comments(1).await.expect("comments");
    assert_eq!(
        listed
            .iter()
            .map(|c| (c.id, c.body.as_str()))
            .collect::<Vec<_>>(),
        vec![(first.id, "plan: 4 changes"), (second.id, "second")]
    );
    gh.delete_comment(1, second.id).await.expect("delete");
    assert_eq!(
        fake.comments(1),
        vec![(first.id, "plan: 4 changes".to_owned())]
    );

    // Labels, with ':' and a space in the name.
    gh.add_label(1, LABEL).await.expect("add label");
    gh.add_label(1, "other").await.expect("add label");
    assert_eq!(gh.labels(1).await.expect("labels"), vec![LABEL, "other"]);
    gh.remove_label(1, LABEL).await.expect("remove label");
    gh.remove_label(1, LABEL)
        .await
        .expect("removing an absent label is fine");
    assert_eq!(fake.labels(1), vec!["other"]);
    assert!(
        fake.requests()
            .iter()
            .any(|r| r.method == "DELETE" && r.path.ends_with("/labels/centossrv%3A%20destructive")),
        "label escaped in the path"
    );

    // Permissions: role_name tells maintain from write and triage from read.
    for (login, role, expected) in [
        ("ada", "admin", Permission::Admin),
        ("max", "maintain", Permission::Maintain),
        ("wes", "write", Permission::Write),
        ("tia", "triage", Permission::Triage),
        ("rea", "read", Permission::Read),
        ("non", "none", Permission::None),
        ("cus", "security-reviewer", Permission::Read),
    ] {
        fake.set_permission(login, role);
        assert_eq!(
            gh.permission(&actor(login)).await.expect(login),
            expected,
            "{role}"
        );
    }
    assert_eq!(
        gh.permission(&actor("stranger")).await.expect("404"),
        Permission::None
    );

    // Issues: none yet, create, find (oldest first), update.
    assert_eq!(gh.find_issue("centossrv: drift").await.expect("find"), None);
    let issue = gh
        .create_issue("Fleet drift", "3 nodes drifted", "centossrv: drift")
        .await
        .expect("create issue");
    assert!(issue.open);
    assert_eq!(issue.number, 4, "issues and pull requests share numbers");
    gh.create_issue("Later drift", "x", "centossrv: drift")
        .await
        .expect("second issue");
    let found = gh
        .find_issue("centossrv: drift")
        .await
        .expect("find")
        .expect("an issue");
    assert_eq!((found.number, found.title.as_str()), (4, "Fleet drift"));
    gh.update_issue(4, "all clear", false).await.expect("close");
    let found = gh
        .find_issue("centossrv: drift")
        .await
        .expect("find")
        .expect("still found");
    assert!(!found.open);
    assert_eq!(found.body, "all clear");
    let record = &fake.issues()[0];
    assert_eq!((record.number, record.open), (4, false));
    assert_eq!(record.labels, vec!["centossrv: drift"]);
    gh.update_issue(4, "drift again", true)
        .await
        .expect("reopen");
    assert!(fake.issues()[0].open);

    assert_clean(&fake);
}

fn status(conclusion: Conclusion, summary: &str, details_url: Option<&str>) -> CommitStatus {
    CommitStatus {
        head_sha: "abc123".into(),
        name: "centossrv/plan".into(),
        conclusion,
        title: "3 nodes change".into(),
        summary: summary.into(),
        details_url: details_url.map(str::to_owned),
    }
}

#[tokio::test]
async fn statuses_as_check_runs_and_as_commit_statuses() {
    let fake = fake().await;
    let mut config = token_config(&fake);
    config.status_api = Some(StatusApi::CheckRuns);
    let gh = client(config);
    let long = "x".repeat(70_000);
    gh.set_status(&status(Conclusion::Pending, "planning", None))
        .await
        .expect("pending");
    gh.set_status(&status(
        Conclusion::Neutral,
        &long,
        Some("https://plans.example/1"),
    ))
    .await
    .expect("neutral");
    gh.set_status(&status(Conclusion::Failure, "does not compile", None))
        .await
        .expect("failure");
    let runs = fake.statuses();
    assert_eq!(
        runs.iter()
            .map(|r| r.state_or_conclusion.as_str())
            .collect::<Vec<_>>(),
        vec!["in_progress", "neutral", "failure"]
    );
    assert!(
        runs.iter()
            .all(|r| r.kind == "check_run" && r.name == "centossrv/plan")
    );
    assert_eq!(
        runs[1].summary.chars().count(),
        65535,
        "summary cut to GitHub's limit"
    );
    assert_eq!(
        runs[1].details_url.as_deref(),
        Some("https://plans.example/1")
    );
    assert_eq!(runs[0].title, "3 nodes change");

    // A plain token defaults to commit statuses.
    let gh = client(token_config(&fake));
    let mut long_title = status(
        Conclusion::Success,
        "ignored",
        Some("https://plans.example/2"),
    );
    long_title.title = "t".repeat(300);
    gh.set_status(&long_title).await.expect("success");
    gh.set_status(&status(Conclusion::Neutral, "", None))
        .await
        .expect("neutral");
    gh.set_status(&status(Conclusion::Pending, "", None))
        .await
        .expect("pending");
    let statuses: Vec<_> = fake.statuses().into_iter().skip(3).collect();
    assert_eq!(
        statuses
            .iter()
            .map(|s| s.state_or_conclusion.as_str())
            .collect::<Vec<_>>(),
        vec!["success", "success", "pending"]
    );
    assert!(
        statuses
            .iter()
            .all(|s| s.kind == "status" && s.head_sha == "abc123")
    );
    assert_eq!(statuses[0].title.chars().count(), 140);
    assert_eq!(
        statuses[0].details_url.as_deref(),
        Some("https://plans.example/2")
    );
    assert_clean(&fake);
}

#[tokio::test]
async fn lists_follow_every_page() {
    let fake = fake().await;
    fake.add_pull(1, "h", "b", "main", "one");
    let ids: Vec<u64> = (0..250)
        .map(|i| fake.add_comment(1, &format!("c{i}")))
        .collect();
    for n in 2..=121 {
        fake.add_pull(n, "h", "b", "main", &format!("pr {n}"));
    }
    let gh = client(token_config(&fake));

    let comments = gh.comments(1).await.expect("comments");
    assert_eq!(comments.iter().map(|c| c.id).collect::<Vec<_>>(), ids);
    assert_eq!(comments[249].body, "c249");
    let pages: Vec<_> = fake
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/issues/1/comments"))
        .map(|r| r.query)
        .collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert!(pages[2].contains("page=3"), "{pages:?}");

    let open = gh.open_change_requests().await.expect("open");
    assert_eq!(open.len(), 121);

    // The issues list includes pull requests; 101 labelled pull requests push the one
    // labelled issue to the second page.
    for n in 1..=101 {
        gh.add_label(n, "centossrv: drift").await.expect("label");
    }
    let issue = gh
        .create_issue("Drift", "body", "centossrv: drift")
        .await
        .expect("issue");
    let found = gh
        .find_issue("centossrv: drift")
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found.number, issue.number);
    assert_clean(&fake);
}

#[tokio::test]
async fn rate_limits_are_waited_out_up_to_max_wait() {
    let fake = fake().await;
    fake.add_pull(1, "h", "b", "main", "one");
    let gh = client(token_config(&fake));

    // A secondary limit (403) then a 429, each with Retry-After: 1.
    fake.rate_limit_next(2, 1);
    let started = Instant::now();
    gh.change_request(1).await.expect("after waiting");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![403, 429, 200]);

    // The primary limit: 403, remaining 0, wait until the reset time.
    fake.primary_rate_limit_next(1, 1);
    gh.change_request(1).await.expect("after the reset");

    // Longer than max_wait: give up at once.
    let mut config = token_config(&fake);
    config.max_wait = Duration::from_secs(2);
    let gh = client(config);
    fake.rate_limit_next(1, 30);
    let started = Instant::now();
    let err = gh.change_request(1).await.expect_err("rate limited");
    assert!(
        matches!(err, ForgeError::RateLimited(d) if d == Duration::from_secs(30)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_clean(&fake);
}

fn openssl(args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A fresh RSA key pair as GitHub hands App keys out (PKCS#1 PEM) and its public half.
fn rsa_key_pair(dir: &std::path::Path) -> (String, String) {
    let key = dir.join("app.pem");
    let key = key.to_str().expect("path");
    openssl(&["genrsa", "-traditional", "-out", key, "2048"]);
    let private = std::fs::read_to_string(key).expect("read key");
    let public = openssl(&["rsa", "-in", key, "-pubout"]);
    (private, public)
}

fn app_config(fake: &FakeGitHub, private_key: &str) -> GitHubConfig {
    let mut config = GitHubConfig::new(
        "acme",
        "fleet",
        GitHubAuth::App {
            app_id: 4242,
            private_key_pem: Secret::new(private_key),
            installation_id: 77,
        },
    );
    config.api_url = fake.base_url();
    config
}

#[tokio::test]
async fn github_app_installation_tokens_are_fetched_and_renewed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, public) = rsa_key_pair(dir.path());
    let fake = fake().await;
    fake.enable_app(4242, 77, &public);
    fake.add_pull(1, "h", "b", "main", "one");
    let gh = client(app_config(&fake, &private));

    gh.create_comment(1, "hello")
        .await
        .unwrap_or_else(|e| panic!("{e}: {:#?}", fake.violations()));
    gh.set_status(&status(Conclusion::Success, "ok", None))
        .await
        .expect("check run");
    assert_eq!(
        fake.statuses()[0].kind,
        "check_run",
        "Apps default to check runs"
    );
    assert_eq!(fake.token_exchanges(), 1, "one token for both requests");
    let requests = fake.requests();
    assert_eq!(
        (requests[0].method.as_str(), requests[0].path.as_str()),
        ("POST", "/app/installations/77/access_tokens")
    );

    // A token about to expire is renewed before use, never sent expired.
    fake.set_token_lifetime(20);
    let gh = client(app_config(&fake, &private));
    for _ in 0..3 {
        gh.change_request(1).await.expect("pull");
    }
    assert_eq!(fake.token_exchanges(), 4);
    assert_clean(&fake);

    // A key GitHub does not know: the JWT is refused, reported as authentication.
    let other_dir = tempfile::tempdir().expect("tempdir");
    let (other_private, _) = rsa_key_pair(other_dir.path());
    let gh = client(app_config(&fake, &other_private));
    let err = gh.change_request(1).await.expect_err("refused");
    assert!(matches!(err, ForgeError::Auth(_)), "{err:?}");
    assert!(
        fake.violations().iter().any(|v| v.contains("JWT refused")),
        "{:?}",
        fake.violations()
    );
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (private, _) = rsa_key_pair(dir.path());
    let fake = fake().await;
    let key_line = private.lines().nth(1).expect("a key line").to_owned();

    let token = token_config(&fake);
    let app = app_config(&fake, &private);
    for text in [
        format!("{token:?}"),
        format!("{app:?}"),
        format!("{:?}", client(token.clone())),
        format!("{:?}", client(app.clone())),
    ] {
        assert!(!text.contains(TOKEN), "{text}");
        assert!(!text.contains(&key_line), "{text}");
    }

    // A refused token: the error says so without repeating it.
    let mut wrong = token_config(&fake);
    wrong.auth = GitHubAuth::Token(Secret::new("ghp_wrong-secret-0000"));
    let err = client(wrong).labels(1).await.expect_err("401");
    assert!(
        matches!(err, ForgeError::Status { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains("ghp_wrong-secret-0000"), "{err}");
    assert!(
        !format!("{err:?}").contains("ghp_wrong-secret-0000"),
        "{err:?}"
    );

    // A key that is not a key.
    let mut broken = app_config(&fake, "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n");
    broken.status_api = None;
    let err = GitHub::new(broken).expect_err("bad key");
    assert!(matches!(err, ForgeError::Auth(_)), "{err:?}");
    assert!(!err.to_string().contains("not a key"), "{err}");
}

/// The fake itself is strict: requests GitHub would refuse are refused and recorded.
#[tokio::test]
async fn the_fake_catches_bad_requests() {
    let fake = fake().await;
    fake.add_pull(1, "h", "b", "main", "one");
    let http = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", fake.base_url());
    let send = |request: reqwest::RequestBuilder| async move {
        request
            .header("user-agent", "test")
            .header("accept", "application/vnd.github+json")
            .send()
            .await
            .expect("send")
            .status()
            .as_u16()
    };

    // A comment without its required `body`.
    let status = send(
        http.post(url("/repos/acme/fleet/issues/1/comments"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"text": "hi"})),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        fake.violations().iter().any(|v| v.contains("body")),
        "{:?}",
        fake.violations()
    );

    // No credentials.
    let before = fake.violations().len();
    let status = send(http.get(url("/repos/acme/fleet/pulls/1"))).await;
    assert_eq!(status, 401);
    assert_eq!(fake.violations().len(), before + 1);

    // An operation GitHub does not have, a bad enum value, an unknown field type.
    let status = send(http.get(url("/repos/acme/fleet/pull/1")).bearer_auth(TOKEN)).await;
    assert_eq!(status, 404);
    let status = send(
        http.get(url("/repos/acme/fleet/pulls?state=merged"))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(status, 422);
    let status = send(
        http.post(url("/repos/acme/fleet/check-runs"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"name": "x", "head_sha": "abc", "status": "done"})),
    )
    .await;
    assert_eq!(status, 422);
    let status = send(
        http.post(url("/repos/acme/fleet/check-runs"))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"name": "x", "head_sha": "abc", "status": "completed"})),
    )
    .await;
    assert_eq!(status, 422, "completed without a conclusion");
    assert_eq!(
        fake.violations().len(),
        before + 5,
        "{:#?}",
        fake.violations()
    );
    assert!(!FakeGitHub::openapi_version().is_empty());
}
