//! Directory sign-in against a real OpenLDAP server (Debian's `slapd`, started by the test
//! on a free loopback port with its own configuration): bind with the user's DN, groups
//! from `groupOfNames`, role bindings through `group:` subjects, refusals for wrong, empty
//! and injected credentials, and an unreachable directory reported as such.

use reconciler::auth::ldap::{LdapConfig, LdapError};
use reconciler::auth::{Auth, AuthConfig, LoginError, Role};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BASE: &str = "dc=example,dc=org";
const DANA_PW: &str = "dana directory password";

struct Slapd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A throwaway slapd, or `None` (with a message) when slapd is not installed.
fn slapd() -> Option<Slapd> {
    if !Path::new("/usr/sbin/slapd").exists() {
        eprintln!("SKIPPED: /usr/sbin/slapd not installed (apt-get install slapd ldap-utils)");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let t = dir.path();
    std::fs::create_dir_all(t.join("slapd.d")).expect("config dir");
    std::fs::create_dir_all(t.join("db")).expect("db dir");
    let config = format!(
        "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: {t}/slapd.pid\n\n\
         dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\nolcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n\n\
         dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n\
         include: file:///etc/ldap/schema/core.ldif\n\n\
         include: file:///etc/ldap/schema/cosine.ldif\n\n\
         include: file:///etc/ldap/schema/nis.ldif\n\n\
         include: file:///etc/ldap/schema/inetorgperson.ldif\n\n\
         dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\nobjectClass: olcMdbConfig\nolcDatabase: {{1}}mdb\n\
         olcSuffix: {BASE}\nolcRootDN: cn=admin,{BASE}\nolcRootPW: admin-secret\nolcDbDirectory: {t}/db\n\
         olcAccess: {{0}}to attrs=userPassword by self read by anonymous auth by * none\n\
         olcAccess: {{1}}to * by users read by * none\n",
        t = t.display()
    );
    std::fs::write(t.join("config.ldif"), config).expect("write config");
    let data = format!(
        "dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n\
         dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n\
         dn: uid=dana,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: dana\ncn: Dana\nsn: Ops\nuserPassword: {DANA_PW}\n\n\
         dn: uid=eve,ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: eve\ncn: Eve\nsn: Dev\nuserPassword: eve directory password\n\n\
         dn: cn=fleet-ops,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: fleet-ops\nmember: uid=dana,ou=people,{BASE}\n\n\
         dn: cn=auditors,ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: auditors\nmember: uid=eve,ou=people,{BASE}\nmember: uid=dana,ou=people,{BASE}\n"
    );
    std::fs::write(t.join("data.ldif"), data).expect("write data");
    run(Command::new("/usr/sbin/slapadd")
        .args(["-n0", "-F"])
        .arg(t.join("slapd.d"))
        .arg("-l")
        .arg(t.join("config.ldif")));
    run(Command::new("/usr/sbin/slapadd")
        .args(["-n1", "-F"])
        .arg(t.join("slapd.d"))
        .arg("-l")
        .arg(t.join("data.ldif")));
    let port = free_port();
    let child = Command::new("/usr/sbin/slapd")
        .args(["-d", "0", "-h", &format!("ldap://127.0.0.1:{port}/"), "-F"])
        .arg(t.join("slapd.d"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start slapd");
    let slapd = Slapd {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "slapd did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(slapd)
}

fn config(port: u16) -> LdapConfig {
    LdapConfig {
        url: format!("ldap://127.0.0.1:{port}"),
        user_dn: format!("uid={{user}},ou=people,{BASE}"),
        group_base: Some(format!("ou=groups,{BASE}")),
        group_filter: "(|(member={dn})(memberUid={user}))".into(),
        timeout_secs: 5,
    }
}

#[tokio::test]
async fn binds_finds_groups_and_refuses_wrong_empty_and_injected_credentials() {
    let Some(server) = slapd() else { return };
    let ldap = config(server.port);
    let groups = ldap
        .authenticate("dana", DANA_PW)
        .await
        .expect("dana binds");
    assert_eq!(groups, ["auditors", "fleet-ops"]);
    let groups = ldap
        .authenticate("eve", "eve directory password")
        .await
        .expect("eve binds");
    assert_eq!(groups, ["auditors"]);
    for (user, pw) in [
        ("dana", "wrong password"),
        ("dana", ""),
        ("nobody", "whatever password"),
        ("*", DANA_PW),
        ("dana,ou=people", DANA_PW),
        ("x)(uid=*", DANA_PW),
    ] {
        let e = ldap.authenticate(user, pw).await.expect_err("refused");
        assert!(
            matches!(e, LdapError::InvalidCredentials),
            "{user}/{pw}: {e:?}"
        );
    }
    let down = config(free_port());
    let e = down.authenticate("dana", DANA_PW).await.expect_err("down");
    assert!(matches!(e, LdapError::Unreachable { .. }), "{e:?}");
}

#[tokio::test]
async fn directory_users_get_roles_through_group_bindings() {
    let Some(server) = slapd() else { return };
    reconciler::tls::ring_provider();
    let dir = tempfile::tempdir().expect("tempdir");
    let store = store::Store::open_data_dir(dir.path())
        .await
        .expect("store");
    store
        .bind_role("group:fleet-ops", "git", "operator")
        .await
        .expect("bind");
    store
        .bind_role("user:eve", "cli", "viewer")
        .await
        .expect("bind");
    let auth = Auth::new(
        store.clone(),
        AuthConfig {
            ldap: Some(config(server.port)),
            ..AuthConfig::default()
        },
    );
    let dana = auth.login("dana", DANA_PW, None).await.expect("dana");
    assert_eq!(dana.roles.into_iter().collect::<Vec<_>>(), [Role::Operator]);
    let eve = auth
        .login("eve", "eve directory password", None)
        .await
        .expect("eve");
    assert_eq!(eve.roles.into_iter().collect::<Vec<_>>(), [Role::Viewer]);
    let e = auth
        .login("dana", "nope nope", None)
        .await
        .expect_err("wrong");
    assert!(matches!(e, LoginError::Invalid), "{e:?}");
    // A local user of the same name is checked locally, never against the directory.
    store
        .create_user(
            "eve",
            Some(&reconciler::auth::password::hash("local password 123").expect("hash")),
        )
        .await
        .expect("local eve");
    assert!(
        auth.login("eve", "eve directory password", None)
            .await
            .is_err()
    );
    assert!(auth.login("eve", "local password 123", None).await.is_ok());
    // The directory's answer is audited like any sign-in.
    let logins: Vec<String> = store
        .audit_list(None, 100)
        .await
        .expect("audit")
        .items
        .into_iter()
        .filter(|e| e.record.action == "auth.login")
        .map(|e| format!("{} {}", e.record.target, e.record.outcome))
        .collect();
    assert_eq!(
        logins,
        ["dana ok", "eve ok", "dana denied", "eve denied", "eve ok"]
    );
}
