//! Users and groups through the root's real shadow-utils (`useradd`, `usermod`, `userdel`,
//! `groupadd`, `groupmod`, `groupdel`, all with `--root ROOT`), observed by parsing
//! `ROOT/etc/passwd` and `ROOT/etc/group` (supplementary groups from the group file's
//! member lists).

use crate::host::Host;
use serde::{Deserialize, Serialize};
use state::{Ensure, GroupSpec, UserSpec};

/// One line of `etc/passwd`, with its primary group's name and its supplementary groups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub uid: u32,
    pub gid: u32,
    /// The primary group's name (the gid as a string when the group file has none).
    pub group: String,
    /// Supplementary groups, sorted.
    #[serde(default)]
    pub groups: Vec<String>,
    pub comment: String,
    pub home: String,
    pub shell: String,
}

/// One line of `etc/group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub gid: u32,
    /// Members listed in the group file, sorted.
    #[serde(default)]
    pub members: Vec<String>,
}

/// The account database of a root.
#[derive(Debug, Clone, Default)]
pub struct Accounts {
    /// name, uid, gid, gecos, home, shell
    pub users: Vec<(String, u32, u32, String, String, String)>,
    /// name, gid, members
    pub groups: Vec<(String, u32, Vec<String>)>,
}

fn read_optional(host: &dyn Host, path: &str) -> Result<String, String> {
    match host.read_file(path) {
        Ok(bytes) => Ok(String::from_utf8_lossy(&bytes).into_owned()),
        Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => Ok(String::new()),
        Err(e) => Err(e.to_string()),
    }
}

impl Accounts {
    pub fn read(host: &dyn Host) -> Result<Accounts, String> {
        Ok(Accounts::parse(
            &read_optional(host, "/etc/passwd")?,
            &read_optional(host, "/etc/group")?,
        ))
    }

    pub fn parse(passwd: &str, group: &str) -> Accounts {
        let lines = |t: &'_ str| {
            t.lines()
                .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
                .map(|l| l.split(':').map(str::to_owned).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        let users = lines(passwd)
            .into_iter()
            .filter(|f| f.len() == 7)
            .filter_map(|f| {
                Some((
                    f[0].clone(),
                    f[2].parse().ok()?,
                    f[3].parse().ok()?,
                    f[4].clone(),
                    f[5].clone(),
                    f[6].clone(),
                ))
            })
            .collect();
        let groups = lines(group)
            .into_iter()
            .filter(|f| f.len() == 4)
            .filter_map(|f| {
                let mut members: Vec<String> = f[3]
                    .split(',')
                    .map(str::trim)
                    .filter(|m| !m.is_empty())
                    .map(str::to_owned)
                    .collect();
                members.sort();
                members.dedup();
                Some((f[0].clone(), f[2].parse().ok()?, members))
            })
            .collect();
        Accounts { users, groups }
    }

    pub fn user(&self, name: &str) -> Option<UserRecord> {
        let (_, uid, gid, gecos, home, shell) = self.users.iter().find(|u| u.0 == name)?;
        let group = self
            .groups
            .iter()
            .find(|g| g.1 == *gid)
            .map_or_else(|| gid.to_string(), |g| g.0.clone());
        let mut groups: Vec<String> = self
            .groups
            .iter()
            .filter(|g| g.2.iter().any(|m| m == name))
            .map(|g| g.0.clone())
            .collect();
        groups.sort();
        groups.dedup();
        Some(UserRecord {
            uid: *uid,
            gid: *gid,
            group,
            groups,
            comment: gecos.clone(),
            home: home.clone(),
            shell: shell.clone(),
        })
    }

    pub fn group(&self, name: &str) -> Option<GroupRecord> {
        let (_, gid, members) = self.groups.iter().find(|g| g.0 == name)?;
        Some(GroupRecord {
            gid: *gid,
            members: members.clone(),
        })
    }
}

/// The observed spec of a user. Supplementary groups are reported only when the desired
/// state manages them (a non-empty list), as `state::plan` compares them whenever reported.
pub fn observe_user(host: &dyn Host, desired: &UserSpec) -> Result<UserSpec, String> {
    let accounts = Accounts::read(host)?;
    Ok(match accounts.user(&desired.name) {
        None => UserSpec {
            name: desired.name.clone(),
            ensure: Ensure::Absent,
            uid: None,
            group: None,
            groups: Vec::new(),
            shell: None,
            home: None,
            comment: None,
            system: false,
        },
        Some(u) => UserSpec {
            name: desired.name.clone(),
            ensure: Ensure::Present,
            uid: Some(u.uid),
            group: Some(u.group),
            groups: if desired.groups.is_empty() {
                Vec::new()
            } else {
                u.groups
            },
            shell: Some(u.shell),
            home: Some(u.home),
            comment: Some(u.comment),
            system: u.uid < 1000,
        },
    })
}

pub fn observe_group(host: &dyn Host, desired: &GroupSpec) -> Result<GroupSpec, String> {
    let accounts = Accounts::read(host)?;
    Ok(match accounts.group(&desired.name) {
        None => GroupSpec {
            name: desired.name.clone(),
            ensure: Ensure::Absent,
            gid: None,
            system: false,
        },
        Some(g) => GroupSpec {
            name: desired.name.clone(),
            ensure: Ensure::Present,
            gid: Some(g.gid),
            system: g.gid < 1000,
        },
    })
}

fn root_arg(host: &dyn Host) -> Result<String, String> {
    host.root()
        .canonicalize()
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| format!("cannot resolve the root {}: {e}", host.root().display()))
}

fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '$'));
    if ok {
        Ok(())
    } else {
        Err(format!("invalid account name `{name}`"))
    }
}

/// Runs a shadow-utils tool with `--root ROOT`; a failure carries its stderr.
fn shadow(host: &dyn Host, program: &str, mut args: Vec<String>) -> Result<(), String> {
    let mut full = vec!["--root".to_owned(), root_arg(host)?];
    full.append(&mut args);
    let out = host.run_tool(program, &full);
    host.accounts_changed();
    let out = out.map_err(|e| format!("cannot run {program}: {e}"))?;
    if out.success() {
        return Ok(());
    }
    Err(format!(
        "{program} failed ({}): {}",
        out.code
            .map_or("killed".to_owned(), |c| format!("exit {c}")),
        out.stderr.trim()
    ))
}

fn field_ok(what: &str, value: &str) -> Result<(), String> {
    if value.contains([':', '\n']) {
        return Err(format!(
            "invalid {what} `{value}` (contains `:` or a newline)"
        ));
    }
    Ok(())
}

/// Brings a user to its desired spec: only managed (set, non-empty) fields are changed.
pub fn set_user(host: &dyn Host, spec: &UserSpec) -> Result<(), String> {
    check_name(&spec.name)?;
    let current = Accounts::read(host)?.user(&spec.name);
    if spec.ensure == Ensure::Absent {
        return match current {
            Some(_) => shadow(host, "userdel", vec![spec.name.clone()]),
            None => Ok(()),
        };
    }
    for (what, v) in [
        ("shell", &spec.shell),
        ("home", &spec.home),
        ("comment", &spec.comment),
        ("group", &spec.group),
    ] {
        if let Some(v) = v {
            field_ok(what, v)?;
        }
    }
    for g in &spec.groups {
        check_name(g)?;
    }
    let mut args = Vec::new();
    let flag = |args: &mut Vec<String>, f: &str, v: String| {
        args.push(f.to_owned());
        args.push(v);
    };
    match current {
        None => {
            if let Some(uid) = spec.uid {
                flag(&mut args, "--uid", uid.to_string());
            }
            if let Some(g) = &spec.group {
                flag(&mut args, "--gid", g.clone());
            }
            if !spec.groups.is_empty() {
                flag(&mut args, "--groups", spec.groups.join(","));
            }
            if let Some(s) = &spec.shell {
                flag(&mut args, "--shell", s.clone());
            }
            if let Some(h) = &spec.home {
                flag(&mut args, "--home-dir", h.clone());
            }
            if let Some(c) = &spec.comment {
                flag(&mut args, "--comment", c.clone());
            }
            if spec.system {
                args.push("--system".to_owned());
            }
            args.push(spec.name.clone());
            shadow(host, "useradd", args)
        }
        Some(have) => {
            if let Some(uid) = spec.uid.filter(|u| *u != have.uid) {
                flag(&mut args, "--uid", uid.to_string());
            }
            if let Some(g) = spec.group.as_ref().filter(|g| **g != have.group) {
                flag(&mut args, "--gid", g.clone());
            }
            if !spec.groups.is_empty() {
                let mut want = spec.groups.clone();
                want.sort();
                want.dedup();
                if want != have.groups {
                    flag(&mut args, "--groups", want.join(","));
                }
            }
            if let Some(s) = spec.shell.as_ref().filter(|s| **s != have.shell) {
                flag(&mut args, "--shell", s.clone());
            }
            if let Some(h) = spec.home.as_ref().filter(|h| **h != have.home) {
                flag(&mut args, "--home", h.clone());
            }
            if let Some(c) = spec.comment.as_ref().filter(|c| **c != have.comment) {
                flag(&mut args, "--comment", c.clone());
            }
            if args.is_empty() {
                return Ok(());
            }
            args.push(spec.name.clone());
            shadow(host, "usermod", args)
        }
    }
}

/// Brings a group to its desired spec.
pub fn set_group(host: &dyn Host, spec: &GroupSpec) -> Result<(), String> {
    check_name(&spec.name)?;
    let current = Accounts::read(host)?.group(&spec.name);
    match (spec.ensure, current) {
        (Ensure::Absent, Some(_)) => shadow(host, "groupdel", vec![spec.name.clone()]),
        (Ensure::Absent, None) => Ok(()),
        (Ensure::Present, None) => {
            let mut args = Vec::new();
            if let Some(gid) = spec.gid {
                args.extend(["--gid".to_owned(), gid.to_string()]);
            }
            if spec.system {
                args.push("--system".to_owned());
            }
            args.push(spec.name.clone());
            shadow(host, "groupadd", args)
        }
        (Ensure::Present, Some(have)) => match spec.gid.filter(|g| *g != have.gid) {
            Some(gid) => shadow(
                host,
                "groupmod",
                vec!["--gid".to_owned(), gid.to_string(), spec.name.clone()],
            ),
            None => Ok(()),
        },
    }
}

/// Restores a recorded user (`None`: it did not exist). Returns whether anything changed.
pub fn restore_user(
    host: &dyn Host,
    name: &str,
    record: Option<&UserRecord>,
) -> Result<bool, String> {
    check_name(name)?;
    let current = Accounts::read(host)?.user(name);
    let Some(rec) = record else {
        return match current {
            Some(_) => shadow(host, "userdel", vec![name.to_owned()]).map(|()| true),
            None => Ok(false),
        };
    };
    if current.as_ref() == Some(rec) {
        return Ok(false);
    }
    let mut args = vec![
        "--uid".to_owned(),
        rec.uid.to_string(),
        "--gid".to_owned(),
        rec.gid.to_string(),
        "--groups".to_owned(),
        rec.groups.join(","),
        "--shell".to_owned(),
        rec.shell.clone(),
        "--comment".to_owned(),
        rec.comment.clone(),
    ];
    if current.is_some() {
        args.extend(["--home".to_owned(), rec.home.clone(), name.to_owned()]);
        shadow(host, "usermod", args)?;
    } else {
        if rec.groups.is_empty() {
            args.drain(4..6);
        }
        args.extend([
            "--home-dir".to_owned(),
            rec.home.clone(),
            // Rollback puts the account back; a home it had is still there (userdel
            // keeps it).
            "--no-create-home".to_owned(),
            "--non-unique".to_owned(),
            name.to_owned(),
        ]);
        shadow(host, "useradd", args)?;
    }
    Ok(true)
}

/// Restores a recorded group (`None`: it did not exist). Returns whether anything changed.
pub fn restore_group(
    host: &dyn Host,
    name: &str,
    record: Option<&GroupRecord>,
) -> Result<bool, String> {
    check_name(name)?;
    let current = Accounts::read(host)?.group(name);
    let Some(rec) = record else {
        return match current {
            Some(_) => shadow(host, "groupdel", vec![name.to_owned()]).map(|()| true),
            None => Ok(false),
        };
    };
    if current.as_ref() == Some(rec) {
        return Ok(false);
    }
    let mut args = vec!["--gid".to_owned(), rec.gid.to_string()];
    if current.is_none() {
        args.extend(["--non-unique".to_owned(), name.to_owned()]);
        shadow(host, "groupadd", args)?;
        args = Vec::new();
    }
    // Members (only those that exist; a member that is a user being restored too is
    // re-added by that user's restore).
    let accounts = Accounts::read(host)?;
    let members: Vec<String> = rec
        .members
        .iter()
        .filter(|m| accounts.users.iter().any(|u| u.0 == **m))
        .cloned()
        .collect();
    args.extend(["--users".to_owned(), members.join(",")]);
    args.push(name.to_owned());
    shadow(host, "groupmod", args)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_and_group_parse() {
        let a = Accounts::parse(
            "root:x:0:0:root:/root:/bin/bash\n# c\nbad:line\nalice:x:2001:2000:Alice A:/home/alice:/bin/sh\n",
            "root:x:0:\nweb:x:2000:\nwheel:x:10:bob,alice\nops:x:1500:alice\n",
        );
        let alice = a.user("alice").expect("alice");
        assert_eq!(alice.uid, 2001);
        assert_eq!(alice.group, "web");
        assert_eq!(alice.groups, vec!["ops".to_owned(), "wheel".to_owned()]);
        assert_eq!(alice.comment, "Alice A");
        assert!(a.user("bad").is_none());
        assert_eq!(
            a.group("wheel").map(|g| g.members),
            Some(vec!["alice".to_owned(), "bob".to_owned()])
        );
    }
}
