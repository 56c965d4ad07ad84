//! The GitLab forge client against the strict fake GitLab (`forge-fake`): every `Forge`
//! method, pagination, rate limits, project path encoding, status descriptions, labels and
//! secrets, with the fake's contract checks (zero violations) as the judge.

use forge_fake::gitlab::{FakeGitLab, IssueRecord, StatusRecord};
use reconciler::forge::gitlab::{GitLab, GitLabConfig};
use reconciler::forge::{
    Actor, ChangeRequest, ChangeRequestState, CommitStatus, Conclusion, Forge, ForgeError,
    ForgeKind, Permission,
};
use reconciler::secret::Secret;
use std::time::{Duration, Instant};

const HEAD: &str = "1f0e7a4c9b2d3e5f60718293a4b5c6d7e8f90a1b";
const BASE: &str = "9a8b7c6d5e4f30211f0e0d0c0b0a090807060504";

fn config(fake: &FakeGitLab, project: &str) -> GitLabConfig {
    GitLabConfig {
        api_url: fake.base_url(),
        max_wait: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
        ..GitLabConfig::new(project, Secret::new(fake.token()))
    }
}

fn client(fake: &FakeGitLab, project: &str) -> GitLab {
    GitLab::new(config(fake, project)).expect("client")
}

fn assert_clean(fake: &FakeGitLab) {
    assert_eq!(fake.violations(), Vec::<String>::new());
}

fn status(sha: &str, conclusion: Conclusion, title: &str) -> CommitStatus {
    CommitStatus {
        head_sha: sha.to_owned(),
        name: "centossrv/plan".to_owned(),
        conclusion,
        title: title.to_owned(),
        summary: "## Plan\n\nnothing to do".to_owned(),
        details_url: None,
    }
}

#[tokio::test]
async fn change_requests_are_read_with_their_diff_refs() {
    let fake = FakeGitLab::start("fleet/infra").await;
    fake.add_merge_request(1, HEAD, BASE, "main", "Add motd");
    fake.add_merge_request(2, "22", "b2", "main", "Open too");
    fake.add_merge_request(3, "33", "b3", "main", "Closed");
    fake.add_merge_request(4, "44", "b4", "main", "Merged");
    fake.close(3, false);
    fake.close(4, true);
    let gitlab = client(&fake, "fleet/infra");
    assert_eq!(gitlab.kind(), ForgeKind::Gitlab);
    assert_eq!(gitlab.head_ref(1), "refs/merge-requests/1/head");

    let cr = gitlab.change_request(1).await.expect("change request");
    assert_eq!(
        cr,
        ChangeRequest {
            number: 1,
            title: "Add motd".to_owned(),
            state: ChangeRequestState::Open,
            head_sha: HEAD.to_owned(),
            base_sha: BASE.to_owned(),
            base_ref: "main".to_owned(),
            url: format!(
                "{}/fleet/infra/-/merge_requests/1",
                fake.base_url().trim_end_matches("/api/v4")
            ),
        }
    );
    fake.set_head(1, "abcdef");
    assert_eq!(
        gitlab.change_request(1).await.expect("cr").head_sha,
        "abcdef"
    );
    assert_eq!(
        gitlab.change_request(3).await.expect("cr").state,
        ChangeRequestState::Closed
    );
    assert_eq!(
        gitlab.change_request(4).await.expect("cr").state,
        ChangeRequestState::Merged
    );
    let missing = gitlab.change_request(99).await.expect_err("no such MR");
    assert!(missing.is_not_found(), "{missing}");

    let open = gitlab.open_change_requests().await.expect("open");
    let numbers: Vec<u64> = open.iter().map(|cr| cr.number).collect();
    assert_eq!(numbers, vec![1, 2]);
    assert_eq!(open[1].base_sha, "b2", "base from the single-MR read");
    assert_clean(&fake);
}

#[tokio::test]
async fn comments_are_created_listed_updated_and_deleted() {
    let fake = FakeGitLab::start("fleet/infra").await;
    fake.add_merge_request(5, HEAD, BASE, "main", "Change");
    fake.add_note(5, "added 1 commit", true);
    fake.add_note(5, "LGTM", false);
    let gitlab = client(&fake, "fleet/infra");

    let created = gitlab
        .create_comment(5, "## centossrv plan\n\n3 nodes change")
        .await
        .expect("create");
    assert_eq!(created.body, "## centossrv plan\n\n3 nodes change");
    let comments = gitlab.comments(5).await.expect("comments");
    let bodies: Vec<&str> = comments.iter().map(|c| c.body.as_str()).collect();
    assert_eq!(bodies, vec!["LGTM", "## centossrv plan\n\n3 nodes change"]);

    gitlab
        .update_comment(5, created.id, "## centossrv plan\n\nupdated")
        .await
        .expect("update");
    assert!(
        fake.notes(5)
            .contains(&(created.id, "## centossrv plan\n\nupdated".to_owned()))
    );
    gitlab.delete_comment(5, created.id).await.expect("delete");
    assert_eq!(fake.notes(5).len(), 1);
    let gone = gitlab
        .delete_comment(5, created.id)
        .await
        .expect_err("already deleted");
    assert!(gone.is_not_found(), "{gone}");
    assert_clean(&fake);
}

#[tokio::test]
async fn more_than_a_hundred_notes_are_read_across_pages() {
    let fake = FakeGitLab::start("fleet/infra").await;
    fake.add_merge_request(1, HEAD, BASE, "main", "Busy");
    for i in 0..250 {
        fake.add_note(1, &format!("note {i}"), false);
        if i % 50 == 0 {
            fake.add_note(1, "changed the description", true);
        }
    }
    let gitlab = client(&fake, "fleet/infra");
    let comments = gitlab.comments(1).await.expect("comments");
    assert_eq!(comments.len(), 250);
    for (i, comment) in comments.iter().enumerate() {
        assert_eq!(comment.body, format!("note {i}"));
    }
    let pages = fake
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/merge_requests/1/notes"))
        .count();
    assert_eq!(pages, 3, "255 notes at 100 per page");

    for iid in 10..140 {
        fake.add_merge_request(iid, &format!("h{iid}"), &format!("b{iid}"), "main", "x");
    }
    let open = gitlab.open_change_requests().await.expect("open");
    assert_eq!(open.len(), 131);
    assert!(open.iter().all(|cr| !cr.base_sha.is_empty()));
    assert_clean(&fake);
}

#[tokio::test]
async fn statuses_map_conclusions_to_gitlab_states() {
    let fake = FakeGitLab::start("fleet/infra").await;
    fake.add_merge_request(1, HEAD, BASE, "main", "Change");
    let gitlab = client(&fake, "fleet/infra");

    gitlab
        .set_status(&status(HEAD, Conclusion::Pending, "Planning"))
        .await
        .expect("pending");
    // Running twice: GitLab refuses the transition; the client takes that as done.
    gitlab
        .set_status(&status(HEAD, Conclusion::Pending, "Planning again"))
        .await
        .expect("pending twice");
    let mut neutral = status(HEAD, Conclusion::Neutral, "2 nodes offline");
    neutral.details_url = Some("https://centossrv.example.com/plans/1".to_owned());
    gitlab.set_status(&neutral).await.expect("neutral");
    gitlab
        .set_status(&status(BASE, Conclusion::Failure, "Does not compile"))
        .await
        .expect("failure");
    gitlab
        .set_status(&status(BASE, Conclusion::Success, "No changes"))
        .await
        .expect("success");
    let record = |sha: &str, state: &str, description: &str, url: Option<&str>| StatusRecord {
        sha: sha.to_owned(),
        name: "centossrv/plan".to_owned(),
        state: state.to_owned(),
        description: Some(description.to_owned()),
        target_url: url.map(str::to_owned),
    };
    assert_eq!(
        fake.statuses(),
        vec![
            record(
                HEAD,
                "success",
                "Needs a look: 2 nodes offline",
                Some("https://centossrv.example.com/plans/1")
            ),
            record(BASE, "failed", "Does not compile", None),
            record(BASE, "success", "No changes", None),
        ]
    );
    let unknown = gitlab
        .set_status(&status("0000", Conclusion::Success, "x"))
        .await
        .expect_err("unknown commit");
    assert!(unknown.is_not_found(), "{unknown}");
    assert_clean(&fake);
}

#[tokio::test]
async fn status_description_is_cut_on_a_character_boundary() {
    let fake = FakeGitLab::start("fleet/infra").await;
    fake.add_merge_request(1, HEAD, BASE, "main", "Change");
    let gitlab = client(&fake, "fleet/infra");
    let title = format!("{}ü€𝄞", "é".repeat(253));
    gitlab
        .set_status(&status(HEAD, Conclusion::Failure, &title))
        .await
        .expect("status");
    let statuses = fake.statuses();
    let description = statuses[0].description.clone().expect("description");
    assert_eq!(description.chars().count(), 255);
    assert!(description.starts_with(&"é".repeat(253)));
    assert!(description.ends_with("ü…"), "{description}");
    assert_clean(&fake);
}

#[tokio::test]
async fn labels_with_colons_and_spaces_are_added_and_removed() {
    let fake = FakeGitLab::start("fleet/infra").await;
    fake.add_merge_request(1, HEAD, BASE, "main", "Change");
    let gitlab = client(&fake, "fleet/infra");
    gitlab
        .add_label(1, "centossrv: destructive")
        .await
        .expect("add");
    gitlab.add_label(1, "needs-review").await.expect("add");
    gitlab
        .add_label(1, "centossrv: destructive")
        .await
        .expect("add again");
    assert_eq!(
        fake.labels(1),
        vec![
            "centossrv: destructive".to_owned(),
            "needs-review".to_owned()
        ]
    );
    assert_eq!(gitlab.labels(1).await.expect("labels"), fake.labels(1));
    gitlab
        .remove_label(1, "centossrv: destructive")
        .await
        .expect("remove");
    gitlab
        .remove_label(1, "centossrv: destructive")
        .await
        .expect("removing an absent label is fine");
    assert_eq!(fake.labels(1), vec!["needs-review".to_owned()]);

    let before = fake.requests().len();
    let refused = gitlab.add_label(1, "a,b").await.expect_err("comma refused");
    assert!(refused.to_string().contains("comma"), "{refused}");
    assert_eq!(fake.requests().len(), before, "nothing sent");
    assert_clean(&fake);
}

#[tokio::test]
async fn permissions_follow_access_levels() {
    let fake = FakeGitLab::start("fleet/infra").await;
    let gitlab = client(&fake, "fleet/infra");
    let table = [
        (10, Permission::Read),
        (15, Permission::Read),
        (20, Permission::Read),
        (30, Permission::Write),
        (40, Permission::Maintain),
        (50, Permission::Admin),
    ];
    for (user, (level, expected)) in (100..).zip(table) {
        fake.set_access_level(user, level);
        let actor = Actor {
            login: format!("user{user}"),
            id: user,
        };
        assert_eq!(
            gitlab.permission(&actor).await.expect("permission"),
            expected,
            "{level}"
        );
    }
    let stranger = Actor {
        login: "stranger".to_owned(),
        id: 9999,
    };
    assert_eq!(
        gitlab.permission(&stranger).await.expect("permission"),
        Permission::None
    );
    assert_clean(&fake);
}

#[tokio::test]
async fn the_drift_issue_is_found_created_closed_and_reopened() {
    let fake = FakeGitLab::start("fleet/infra").await;
    fake.add_issue("Unrelated", "", &["bug"], true);
    let gitlab = client(&fake, "fleet/infra");
    let label = "centossrv: drift";
    assert_eq!(gitlab.find_issue(label).await.expect("find"), None);

    let issue = gitlab
        .create_issue("Fleet drift", "3 nodes drifted", label)
        .await
        .expect("create");
    assert!(issue.open);
    assert_eq!(issue.title, "Fleet drift");
    assert_eq!(issue.body, "3 nodes drifted");
    assert_eq!(
        gitlab.find_issue(label).await.expect("find"),
        Some(issue.clone())
    );

    gitlab
        .update_issue(issue.number, "no drift", false)
        .await
        .expect("close");
    gitlab
        .update_issue(issue.number, "still no drift", false)
        .await
        .expect("close again");
    let found = gitlab
        .find_issue(label)
        .await
        .expect("find")
        .expect("issue");
    assert!(!found.open, "closed issues are found too");
    assert_eq!(found.body, "still no drift");
    gitlab
        .update_issue(issue.number, "1 node drifted", true)
        .await
        .expect("reopen");

    // A newer issue with the same label does not replace the oldest.
    gitlab
        .create_issue("Fleet drift (duplicate)", "", label)
        .await
        .expect("create");
    assert_eq!(
        gitlab
            .find_issue(label)
            .await
            .expect("find")
            .map(|i| i.number),
        Some(issue.number)
    );
    assert_eq!(
        fake.issues()[1],
        IssueRecord {
            iid: issue.number,
            open: true,
            title: "Fleet drift".to_owned(),
            description: Some("1 node drifted".to_owned()),
            labels: vec![label.to_owned()],
        }
    );
    assert_clean(&fake);
}

#[tokio::test]
async fn nested_project_paths_are_encoded_and_numeric_ids_work() {
    let fake = FakeGitLab::start("group/sub/project").await;
    fake.add_merge_request(1, HEAD, BASE, "main", "Change");
    let by_path = client(&fake, "group/sub/project");
    by_path.change_request(1).await.expect("by path");
    by_path.create_comment(1, "hello").await.expect("comment");
    let by_id = client(&fake, &fake.project_id().to_string());
    by_id.change_request(1).await.expect("by id");
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        vec![
            "/api/v4/projects/group%2Fsub%2Fproject/merge_requests/1",
            "/api/v4/projects/group%2Fsub%2Fproject/merge_requests/1/notes",
            "/api/v4/projects/42/merge_requests/1",
        ]
    );
    assert_clean(&fake);
}

#[tokio::test]
async fn rate_limits_are_waited_out_within_max_wait() {
    let fake = FakeGitLab::start("fleet/infra").await;
    fake.add_merge_request(1, HEAD, BASE, "main", "Change");
    let gitlab = client(&fake, "fleet/infra");
    fake.rate_limit_next(2, 1);
    let started = Instant::now();
    gitlab.change_request(1).await.expect("after two 429s");
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert_eq!(fake.requests().len(), 3);

    fake.rate_limit_next(1, 120);
    let started = Instant::now();
    let err = gitlab.change_request(1).await.expect_err("gives up");
    assert!(
        matches!(err, ForgeError::RateLimited(wait) if wait == Duration::from_secs(120)),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "no waiting");
    assert_eq!(fake.requests().len(), 4);
    assert_clean(&fake);
}

#[tokio::test]
async fn the_token_stays_out_of_debug_and_errors() {
    let fake = FakeGitLab::start("fleet/infra").await;
    let token = "glpat-very-secret-token-value";
    let gitlab = GitLab::new(GitLabConfig {
        token: Secret::new(token),
        ..config(&fake, "fleet/infra")
    })
    .expect("client");
    let debug = format!("{gitlab:?} {:?}", config(&fake, "x"));
    assert!(!debug.contains(token), "{debug}");
    assert!(!debug.contains(&fake.token()), "{debug}");
    assert!(debug.contains("Secret(***)"), "{debug}");

    let err = gitlab.change_request(1).await.expect_err("wrong token");
    assert!(
        matches!(err, ForgeError::Status { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.to_string().contains(token));
    assert!(!format!("{err:?}").contains(token));
    assert_eq!(fake.violations().len(), 1, "the fake records the bad token");
}

#[tokio::test]
async fn the_fake_records_malformed_requests() {
    let fake = FakeGitLab::start("group/project").await;
    fake.add_merge_request(1, HEAD, BASE, "main", "Change");
    reconciler::tls::ring_provider();
    let http = reqwest::Client::new();
    let statuses = format!(
        "{}/projects/group%2Fproject/statuses/{HEAD}",
        fake.base_url()
    );

    let response = http
        .post(&statuses)
        .header("PRIVATE-TOKEN", fake.token())
        .json(&serde_json::json!({ "state": "green", "name": "centossrv/plan" }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("state does not have a valid value")),
        "{body}"
    );

    let cases = [
        // Unknown attribute and a description over 255 characters.
        serde_json::json!({ "state": "success", "colour": "green" }),
        serde_json::json!({ "state": "success", "description": "x".repeat(256) }),
        // Missing required state.
        serde_json::json!({ "name": "centossrv/plan" }),
        // Wrong type.
        serde_json::json!({ "state": "success", "pipeline_id": "seven" }),
    ];
    for case in &cases {
        let response = http
            .post(&statuses)
            .header("PRIVATE-TOKEN", fake.token())
            .json(case)
            .send()
            .await
            .expect("send");
        assert_eq!(response.status(), 400, "{case}");
    }
    // Unencoded project path, and a missing token.
    let response = http
        .get(format!(
            "{}/projects/group/project/merge_requests/1",
            fake.base_url()
        ))
        .header("PRIVATE-TOKEN", fake.token())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 404);
    let response = http
        .get(format!("{}/projects/42/merge_requests/1", fake.base_url()))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 401);

    let violations = fake.violations();
    assert_eq!(violations.len(), 7, "{violations:#?}");
    assert!(violations[1].contains("colour is not a documented attribute"));
    assert!(violations[2].contains("description is too long"));
    assert!(violations[3].contains("state is missing"));
    assert!(violations[4].contains("pipeline_id is invalid"));
    assert!(violations[5].contains("must be URL-encoded"));
    assert!(violations[6].contains("PRIVATE-TOKEN header missing"));
    assert!(fake.statuses().is_empty());
}

#[tokio::test]
async fn the_fake_takes_form_bodies_and_refuses_repeated_transitions_like_gitlab() {
    let fake = FakeGitLab::start("group/project").await;
    fake.add_merge_request(1, HEAD, BASE, "main", "Change");
    reconciler::tls::ring_provider();
    let http = reqwest::Client::new();
    let statuses = format!(
        "{}/projects/{}/statuses/{HEAD}",
        fake.base_url(),
        fake.project_id()
    );
    let post = |body: &'static str| {
        http.post(&statuses)
            .header("PRIVATE-TOKEN", fake.token())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let first = post("state=running&name=centossrv%2Fplan&description=Planning+now")
        .await
        .expect("send");
    assert_eq!(first.status(), 201);
    let created: serde_json::Value = first.json().await.expect("json");
    assert_eq!(created["status"], "running");
    assert_eq!(created["description"], "Planning now");
    let again = post("state=running&name=centossrv%2Fplan")
        .await
        .expect("send");
    assert_eq!(again.status(), 400);
    let body: serde_json::Value = again.json().await.expect("json");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Cannot transition status via :run from :running")),
        "{body}"
    );
    let done = post("state=success&name=centossrv%2Fplan")
        .await
        .expect("send");
    assert_eq!(done.status(), 201);
    assert_eq!(fake.statuses().len(), 1, "the running status moved on");
    assert_eq!(fake.statuses()[0].state, "success");
    assert_clean(&fake);
}
