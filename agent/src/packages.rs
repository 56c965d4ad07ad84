//! Packages through the root's real `rpm` and `dnf`.
//!
//! Observation: `rpm --root ROOT --dbpath /var/lib/rpm -q --qf '%{EPOCH}:%{VERSION}-%{RELEASE}\n'
//! NAME`, parsed strictly; an unset epoch (`(none)`) and epoch `0` are left out, so an
//! installed package is reported as `version-release` or `epoch:version-release`.
//!
//! Changes: `dnf --installroot=ROOT` with the root's own configuration (`ROOT/etc/dnf/dnf.conf`
//! when it exists, repositories from `ROOT/etc/yum.repos.d`), plus `--repofrompath` for each
//! `--repo NAME=URL` of the agent, `--refresh` (metadata is never trusted from the cache: a
//! repository that changed would otherwise look unchanged), `install_weak_deps=False`, and
//! `--nogpgcheck` only when the agent was started with it. Both tools run with `HOME` set to
//! the agent's tool directory, whose `.rpmmacros` pins `%_dbpath` to `/var/lib/rpm`: some
//! rpm builds (Debian's) default to `~/.rpmdb`, and rpm and dnf must read the same database.

use crate::host::{Host, HostError, ToolOutput};
use state::{PackageEnsure, PackageSpec};
use std::cmp::Ordering;

/// The rpm database path inside the root, as on CentOS/RHEL.
pub const RPM_DBPATH: &str = "/var/lib/rpm";

/// The root as tools take it: absolute, symlinks resolved.
fn root_arg(host: &dyn Host) -> Result<String, String> {
    host.root()
        .canonicalize()
        .map(|p| p.to_string_lossy().into_owned())
        .map_err(|e| format!("cannot resolve the root {}: {e}", host.root().display()))
}

fn trimmed(text: &str) -> String {
    let text = text.trim();
    const MAX: usize = 2000;
    if text.len() > MAX {
        let mut end = MAX;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    } else {
        text.to_owned()
    }
}

/// The installed versions of `name` (`[epoch:]version-release`, sorted, deduplicated); empty
/// when it is not installed.
pub fn installed_versions(host: &dyn Host, name: &str) -> Result<Vec<String>, String> {
    if name.is_empty() || name.starts_with('-') || name.contains(char::is_whitespace) {
        return Err(format!("invalid package name `{name}`"));
    }
    let root = root_arg(host)?;
    let args: Vec<String> = vec![
        "--root".into(),
        root,
        "--dbpath".into(),
        RPM_DBPATH.into(),
        "-q".into(),
        "--qf".into(),
        "%{EPOCH}:%{VERSION}-%{RELEASE}\\n".into(),
        "--".into(),
        name.into(),
    ];
    let out = host
        .run_tool("rpm", &args)
        .map_err(|e: HostError| format!("cannot run rpm: {e}"))?;
    parse_rpm_query(name, &out)
}

/// Parses the output of `rpm -q --qf '%{EPOCH}:%{VERSION}-%{RELEASE}\n' NAME`.
pub fn parse_rpm_query(name: &str, out: &ToolOutput) -> Result<Vec<String>, String> {
    let not_installed = format!("package {name} is not installed");
    if out.code == Some(1) && out.stdout.trim() == not_installed {
        return Ok(Vec::new());
    }
    if !out.success() {
        return Err(format!(
            "rpm -q {name} failed ({}): {}",
            out.code
                .map_or("killed".to_owned(), |c| format!("exit {c}")),
            trimmed(&format!("{}\n{}", out.stderr, out.stdout))
        ));
    }
    let mut versions = Vec::new();
    for line in out.stdout.lines() {
        let Some(evr) = parse_evr_line(line) else {
            return Err(format!("unexpected output of rpm -q {name}: {line:?}"));
        };
        versions.push(evr);
    }
    if versions.is_empty() {
        return Err(format!("rpm -q {name} printed nothing"));
    }
    versions.sort_by(|a, b| evr_cmp(a, b));
    versions.dedup();
    Ok(versions)
}

/// `(none):1.0-1` -> `1.0-1`, `0:1.0-1` -> `1.0-1`, `2:1.0-1` -> `2:1.0-1`; `None` unless the
/// line is exactly `EPOCH:VERSION-RELEASE`.
fn parse_evr_line(line: &str) -> Option<String> {
    let (epoch, vr) = line.split_once(':')?;
    let (version, release) = vr.rsplit_once('-')?;
    let field_ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '~' | '^'))
    };
    if !field_ok(version) || !field_ok(release) {
        return None;
    }
    match epoch {
        "(none)" | "0" => Some(vr.to_owned()),
        e if !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit()) => {
            Some(format!("{}:{vr}", e.trim_start_matches('0')))
        }
        _ => None,
    }
}

/// Splits `[epoch:]version[-release]` into (epoch, version, release).
fn split_evr(evr: &str) -> (u64, &str, Option<&str>) {
    let (epoch, vr) = match evr.split_once(':') {
        Some((e, vr)) => (e.parse().unwrap_or(0), vr),
        None => (0, evr),
    };
    match vr.rsplit_once('-') {
        Some((v, r)) => (epoch, v, Some(r)),
        None => (epoch, vr, None),
    }
}

/// Whether an installed `have` is the desired `want` (a missing epoch is 0; a `want` without
/// release matches any release).
pub fn evr_matches(want: &str, have: &str) -> bool {
    let (we, wv, wr) = split_evr(want);
    let (he, hv, hr) = split_evr(have);
    we == he && wv == hv && (wr.is_none() || wr == hr)
}

/// Orders two `[epoch:]version-release` strings as rpm does.
pub fn evr_cmp(a: &str, b: &str) -> Ordering {
    let (ae, av, ar) = split_evr(a);
    let (be, bv, br) = split_evr(b);
    ae.cmp(&be)
        .then_with(|| rpmvercmp(av, bv))
        .then_with(|| match (ar, br) {
            (Some(x), Some(y)) => rpmvercmp(x, y),
            _ => Ordering::Equal,
        })
}

/// rpm's `rpmvercmp`: alternating numeric and alphabetic segments, `~` sorts before
/// everything (even the end), `^` after the end but before anything else.
pub fn rpmvercmp(a: &str, b: &str) -> Ordering {
    if a == b {
        return Ordering::Equal;
    }
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    let sep = |c: u8| !c.is_ascii_alphanumeric() && c != b'~' && c != b'^';
    loop {
        while let Some((_, rest)) = a.split_first().filter(|(c, _)| sep(**c)) {
            a = rest;
        }
        while let Some((_, rest)) = b.split_first().filter(|(c, _)| sep(**c)) {
            b = rest;
        }
        match (a.first(), b.first()) {
            (Some(b'~'), Some(b'~')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'~'), _) => return Ordering::Less,
            (_, Some(b'~')) => return Ordering::Greater,
            (Some(b'^'), Some(b'^')) => {
                a = &a[1..];
                b = &b[1..];
                continue;
            }
            (Some(b'^'), None) => return Ordering::Greater,
            (None, Some(b'^')) => return Ordering::Less,
            (Some(b'^'), _) => return Ordering::Less,
            (_, Some(b'^')) => return Ordering::Greater,
            (None, None) => return Ordering::Equal,
            (None, _) => return Ordering::Less,
            (_, None) => return Ordering::Greater,
            _ => {}
        }
        let numeric = a[0].is_ascii_digit();
        let take = |s: &[u8]| {
            s.iter()
                .take_while(|c| {
                    if numeric {
                        c.is_ascii_digit()
                    } else {
                        c.is_ascii_alphabetic()
                    }
                })
                .count()
        };
        let (na, nb) = (take(a), take(b));
        if nb == 0 {
            // Segments of different types: numeric is newer.
            return if numeric {
                Ordering::Greater
            } else {
                Ordering::Less
            };
        }
        let (sa, sb) = (&a[..na], &b[..nb]);
        let ord = if numeric {
            let strip = |s: &[u8]| {
                let z = s.iter().take_while(|c| **c == b'0').count();
                s[z..].to_vec()
            };
            let (x, y) = (strip(sa), strip(sb));
            x.len().cmp(&y.len()).then_with(|| x.cmp(&y))
        } else {
            sa.cmp(sb)
        };
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[na..];
        b = &b[nb..];
    }
}

/// The observed `ensure` of a package: `Absent`, or `Version` of what is installed (several
/// installed versions, as for kernels, are listed comma-separated). When the desired version
/// is an equivalent spelling of the installed one (`0:1.0-1` for `1.0-1`), it is reported in
/// the desired spelling, so plans compare like with like.
pub fn observe_package(host: &dyn Host, desired: &PackageSpec) -> Result<PackageEnsure, String> {
    let versions = installed_versions(host, &desired.name)?;
    Ok(match versions.as_slice() {
        [] => PackageEnsure::Absent,
        [one] => match &desired.ensure {
            PackageEnsure::Version(want) if evr_matches(want, one) => {
                PackageEnsure::Version(want.clone())
            }
            _ => PackageEnsure::Version(one.clone()),
        },
        many => PackageEnsure::Version(many.join(", ")),
    })
}

/// The common arguments of every dnf call on this host's root.
fn dnf_args(host: &dyn Host) -> Result<Vec<String>, String> {
    let root = root_arg(host)?;
    let root_path = std::path::Path::new(&root);
    let tool_dir = host
        .tool_dir()
        .map_err(|e| format!("cannot prepare dnf: {e}"))?;
    let own_conf = root_path.join("etc/dnf/dnf.conf");
    let conf = if own_conf.is_file() {
        own_conf
    } else {
        tool_dir.join("dnf.conf")
    };
    let reposdirs: Vec<String> = ["etc/yum.repos.d", "etc/yum/repos.d", "etc/distro.repos.d"]
        .iter()
        .map(|d| root_path.join(d).to_string_lossy().into_owned())
        .collect();
    let mut args = vec![
        format!("--installroot={root}"),
        format!("--config={}", conf.display()),
        format!("--setopt=reposdir={}", reposdirs.join(",")),
        "--setopt=install_weak_deps=False".to_owned(),
        "--refresh".to_owned(),
        "-y".to_owned(),
    ];
    if root_path != std::path::Path::new("/")
        && let Some(release) = releasever(root_path)
    {
        // A sandbox root usually has no package providing system-release to detect it.
        args.push(format!("--releasever={release}"));
    }
    let options = host.package_options();
    for (name, url) in &options.repos {
        args.push(format!("--repofrompath={name},{url}"));
    }
    if options.nogpgcheck {
        args.push("--nogpgcheck".to_owned());
    }
    Ok(args)
}

/// The major `VERSION_ID` of the root's `etc/os-release`.
fn releasever(root: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(root.join("etc/os-release")).ok()?;
    let v = text.lines().find_map(|l| l.strip_prefix("VERSION_ID="))?;
    let v = v.trim().trim_matches('"');
    let major = v.split('.').next()?;
    (!major.is_empty() && major.bytes().all(|b| b.is_ascii_alphanumeric()))
        .then(|| major.to_owned())
}

/// Runs `dnf COMMAND ARGS...` on the root; a failure carries dnf's stderr.
fn dnf(host: &dyn Host, command: &str, targets: &[String]) -> Result<(), String> {
    let mut args = dnf_args(host)?;
    args.push(command.to_owned());
    args.extend(targets.iter().cloned());
    let out = host
        .run_tool("dnf", &args)
        .map_err(|e| format!("cannot run dnf: {e}"))?;
    if out.success() {
        return Ok(());
    }
    let detail = if out.stderr.trim().is_empty() {
        trimmed(&out.stdout)
    } else {
        trimmed(&out.stderr)
    };
    Err(format!(
        "dnf {command} {} failed ({}): {detail}",
        targets.join(" "),
        out.code
            .map_or("killed".to_owned(), |c| format!("exit {c}")),
    ))
}

/// Brings the package `name` to `ensure`: install, upgrade, downgrade or remove with dnf.
pub fn set_package(host: &dyn Host, name: &str, ensure: &PackageEnsure) -> Result<(), String> {
    let installed = installed_versions(host, name)?;
    match ensure {
        PackageEnsure::Absent => {
            if installed.is_empty() {
                Ok(())
            } else {
                dnf(host, "remove", &[name.to_owned()])
            }
        }
        PackageEnsure::Present => {
            if installed.is_empty() {
                dnf(host, "install", &[name.to_owned()])
            } else {
                Ok(())
            }
        }
        PackageEnsure::Latest => {
            if installed.is_empty() {
                dnf(host, "install", &[name.to_owned()])
            } else {
                dnf(host, "upgrade", &[name.to_owned()])
            }
        }
        PackageEnsure::Version(want) => {
            if want.is_empty() || want.contains(char::is_whitespace) {
                return Err(format!("invalid package version `{want}`"));
            }
            if installed.len() == 1 && evr_matches(want, &installed[0]) {
                return Ok(());
            }
            let target = format!("{name}-{want}");
            let newer_installed = installed
                .iter()
                .any(|have| evr_cmp(have, want) == Ordering::Greater);
            if newer_installed && installed.len() == 1 {
                dnf(host, "downgrade", &[target])
            } else {
                dnf(host, "install", &[target])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stdout: &str) -> ToolOutput {
        ToolOutput {
            code: Some(code),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    #[test]
    fn rpm_query_output_is_parsed_strictly() {
        assert_eq!(
            parse_rpm_query("x", &out(0, "(none):1.0-1\n")),
            Ok(vec!["1.0-1".to_owned()])
        );
        assert_eq!(
            parse_rpm_query("x", &out(0, "1:1.20.1-20.el9\n")),
            Ok(vec!["1:1.20.1-20.el9".to_owned()])
        );
        assert_eq!(
            parse_rpm_query("x", &out(0, "0:2.0-1\n")),
            Ok(vec!["2.0-1".to_owned()])
        );
        assert_eq!(
            parse_rpm_query("k", &out(0, "(none):5.14-2\n(none):5.14-10\n")),
            Ok(vec!["5.14-2".to_owned(), "5.14-10".to_owned()])
        );
        assert_eq!(
            parse_rpm_query("x", &out(1, "package x is not installed\n")),
            Ok(vec![])
        );
        assert!(parse_rpm_query("x", &out(0, "garbage\n")).is_err());
        assert!(parse_rpm_query("x", &out(0, "")).is_err());
        assert!(parse_rpm_query("x", &out(1, "error: rpmdb open failed\n")).is_err());
    }

    #[test]
    fn versions_compare_like_rpm() {
        use Ordering::*;
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "2.0", Less),
            ("1.10", "1.9", Greater),
            ("1.0a", "1.0", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0^git1", "1.0", Greater),
            ("1.0^git1", "1.0.1", Less),
            ("2.0.1", "2.0.1a", Less),
            ("1.001", "1.1", Equal),
            ("5.5p1", "5.5p10", Less),
        ] {
            assert_eq!(rpmvercmp(a, b), want, "{a} vs {b}");
        }
        assert_eq!(evr_cmp("1:1.0-1", "2.0-1"), Greater);
        assert_eq!(evr_cmp("2.0-1", "2.0-2"), Less);
        assert!(evr_matches("0:1.0-1", "1.0-1"));
        assert!(evr_matches("1.0", "1.0-7"));
        assert!(!evr_matches("1.0-1", "1:1.0-1"));
    }
}
