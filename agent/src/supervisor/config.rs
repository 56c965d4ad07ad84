//! What the built-in supervisor runs for a service: its unit file (found on systemd's
//! search path under the root) with every `NAME.service.d/*.conf` drop-in merged in, turned
//! into a command line, environment, working directory, user, restart policy, reload
//! commands and health check. Settings it cannot honour are errors that name them, never
//! silently ignored.
//!
//! Files the supervisor reads itself (units, drop-ins, `EnvironmentFile=`) are host paths
//! resolved under the root. The process is not confined to the root: `ExecStart=` and
//! `WorkingDirectory=` name paths as the process sees them.

use crate::host::{EntryKind, Host};
use crate::unit::{self, Unit};
use state::{HealthCheck, RestartPolicy};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `PATH` of a service's environment, as systemd sets it.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// systemd's default `RestartSec=`.
pub const DEFAULT_RESTART_SEC: Duration = Duration::from_millis(100);
/// Default `TimeoutStopSec=` of the supervisor (systemd's is 90 s).
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `[Service]` settings that change what a service does and that the supervisor cannot
/// honour: a unit using one is refused.
const UNSUPPORTED: [&str; 9] = [
    "ExecStartPre",
    "ExecStartPost",
    "ExecStop",
    "ExecStopPost",
    "ExecCondition",
    "RootDirectory",
    "PIDFile",
    "BusName",
    "Sockets",
];

/// A runnable service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceConfig {
    /// The program and its arguments.
    pub argv: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub working_directory: Option<PathBuf>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub restart: RestartPolicy,
    /// First restart delay; doubled on each consecutive restart.
    pub restart_sec: Duration,
    /// Time between SIGTERM and SIGKILL when stopping.
    pub stop_timeout: Duration,
    pub health_check: Option<HealthCheck>,
    /// `ExecReload=` commands, run in order on a reload; none: a reload sends SIGHUP to the
    /// main process.
    pub reload: Vec<ReloadCommand>,
}

/// One `ExecReload=` line. Its words are expanded when it runs: `$MAINPID` is known only
/// then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadCommand {
    /// The line without its prefix.
    line: String,
    /// Prefix `-`: a failure (non-zero exit, signal) does not fail the reload.
    pub ignore_failure: bool,
}

impl ServiceConfig {
    /// The argv of each `ExecReload=` command of service `name` whose main process is
    /// `main_pid`, with whether its failure is ignored; `$MAINPID` (and `${MAINPID}`) is the
    /// main process's pid, as under systemd.
    pub fn reload_commands(
        &self,
        name: &str,
        main_pid: u32,
    ) -> Result<Vec<(Vec<String>, bool)>, String> {
        let env = self.reload_environment(main_pid);
        self.reload
            .iter()
            .map(|c| {
                command_line("ExecReload", &c.line, name, &env).map(|argv| (argv, c.ignore_failure))
            })
            .collect()
    }

    /// The environment of a reload command: the service's, plus `MAINPID`.
    pub fn reload_environment(&self, main_pid: u32) -> BTreeMap<String, String> {
        let mut env = self.environment.clone();
        env.insert("MAINPID".to_owned(), main_pid.to_string());
        env
    }
}

/// The unit file of `name` on systemd's search path: (host path, content).
pub fn find_unit(host: &dyn Host, name: &str) -> Result<Option<(String, String)>, String> {
    for dir in unit::UNIT_SEARCH_PATH {
        let path = format!("{dir}/{name}.service");
        match host.stat(&path).map_err(|e| e.to_string())? {
            // A link to /dev/null masks the unit; other links are followed by reading.
            Some(m) if m.kind == EntryKind::Symlink => {
                if host.read_link(&path).map_err(|e| e.to_string())? == "/dev/null" {
                    return Err(format!("service {name} is masked ({path} -> /dev/null)"));
                }
                let target = host.read_link(&path).map_err(|e| e.to_string())?;
                let target = if target.starts_with('/') {
                    target
                } else {
                    format!("{dir}/{target}")
                };
                return read_text(host, &target).map(|t| Some((path, t)));
            }
            Some(_) => return read_text(host, &path).map(|t| Some((path, t))),
            None => {}
        }
    }
    Ok(None)
}

fn read_text(host: &dyn Host, path: &str) -> Result<String, String> {
    let bytes = host.read_file(path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|_| format!("{path} is not UTF-8 text"))
}

/// The unit of `name` with its drop-ins (`*.conf` of every `NAME.service.d` on the search
/// path, in name order, later files winning).
pub fn load_unit(host: &dyn Host, name: &str) -> Result<Unit, String> {
    let Some((path, text)) = find_unit(host, name)? else {
        return Err(format!(
            "no unit file for service {name} (looked for {name}.service in {})",
            unit::UNIT_SEARCH_PATH.join(", ")
        ));
    };
    let mut unit = Unit::parse(&path, &text).map_err(|e| e.to_string())?;
    let mut drop_ins: BTreeMap<String, String> = BTreeMap::new();
    for dir in unit::UNIT_SEARCH_PATH.iter().rev() {
        let d = format!("{dir}/{name}.service.d");
        let Some(names) = host.list_dir(&d).map_err(|e| e.to_string())? else {
            continue;
        };
        for file in names.into_iter().filter(|f| f.ends_with(".conf")) {
            drop_ins.insert(file.clone(), format!("{d}/{file}"));
        }
    }
    for path in drop_ins.values() {
        let text = read_text(host, path)?;
        unit.merge(path, &text).map_err(|e| e.to_string())?;
    }
    Ok(unit)
}

/// What the supervisor runs for service `name`.
pub fn load(host: &dyn Host, name: &str) -> Result<ServiceConfig, String> {
    let unit = load_unit(host, name)?;
    from_unit(host, name, &unit)
}

fn from_unit(host: &dyn Host, name: &str, unit: &Unit) -> Result<ServiceConfig, String> {
    let refuse = |what: String| {
        Err(format!(
            "service {name}: {what} is not supported by the built-in supervisor"
        ))
    };
    for key in UNSUPPORTED {
        if !unit.list("Service", key).is_empty() {
            return refuse(format!("{key}="));
        }
    }
    match unit.last("Service", "Type").unwrap_or("simple") {
        "simple" | "exec" | "notify" | "idle" | "" => {}
        other => return refuse(format!("Type={other}")),
    }
    let mut environment = BTreeMap::new();
    environment.insert("PATH".to_owned(), DEFAULT_PATH.to_owned());
    for file in unit.list("Service", "EnvironmentFile") {
        let (optional, path) = match file.strip_prefix('-') {
            Some(p) => (true, p),
            None => (false, file),
        };
        match host.read_file(path) {
            Ok(bytes) => environment.extend(parse_env_file(&String::from_utf8_lossy(&bytes))),
            Err(_) if optional => {}
            Err(e) => return Err(format!("service {name}: EnvironmentFile={path}: {e}")),
        }
    }
    environment.extend(unit::environment(unit, name).map_err(|e| format!("service {name}: {e}"))?);
    let exec = unit.list("Service", "ExecStart");
    let [line] = exec.as_slice() else {
        return Err(if exec.is_empty() {
            format!("service {name}: the unit has no ExecStart=")
        } else {
            format!("service {name}: several ExecStart= lines (only Type=oneshot allows that)")
        });
    };
    let (line, _) = strip_prefix("ExecStart", line, name)?;
    let argv = command_line("ExecStart", line, name, &environment)?;
    let mut reload = Vec::new();
    for line in unit.list("Service", "ExecReload") {
        let (line, ignore_failure) = strip_prefix("ExecReload", line, name)?;
        // Checked now, like systemd loading the unit; expanded again with the real pid.
        let mut env = environment.clone();
        env.insert("MAINPID".to_owned(), "1".to_owned());
        command_line("ExecReload", line, name, &env)?;
        reload.push(ReloadCommand {
            line: line.to_owned(),
            ignore_failure,
        });
    }
    let working_directory = match unit.last("Service", "WorkingDirectory") {
        None | Some("") => None,
        Some(dir) => {
            let dir = dir.strip_prefix('-').unwrap_or(dir);
            if !dir.starts_with('/') {
                return refuse(format!("WorkingDirectory={dir} (not an absolute path)"));
            }
            Some(PathBuf::from(dir))
        }
    };
    let uid = match unit.last("Service", "User") {
        None | Some("") => None,
        Some(user) => Some(
            host.user_id(user)
                .or_else(|| user.parse().ok())
                .ok_or_else(|| format!("service {name}: unknown User={user}"))?,
        ),
    };
    let gid = match unit.last("Service", "Group") {
        None | Some("") => None,
        Some(group) => Some(
            host.group_id(group)
                .or_else(|| group.parse().ok())
                .ok_or_else(|| format!("service {name}: unknown Group={group}"))?,
        ),
    };
    let restart = match unit.last("Service", "Restart").unwrap_or("no") {
        "no" | "" => RestartPolicy::No,
        "always" => RestartPolicy::Always,
        "on-failure" => RestartPolicy::OnFailure,
        other => return refuse(format!("Restart={other}")),
    };
    let span = |key: &str, default: Duration| -> Result<Duration, String> {
        match unit.last("Service", key) {
            None => Ok(default),
            Some(v) => unit::parse_timespan(v)
                .map(|d| d.unwrap_or(Duration::from_secs(24 * 3600)))
                .map_err(|e| format!("service {name}: {key}=: {e}")),
        }
    };
    let restart_sec = span("RestartSec", DEFAULT_RESTART_SEC)?;
    let stop_timeout = span("TimeoutStopSec", DEFAULT_STOP_TIMEOUT)?;
    let health_check = unit
        .last(unit::AGENT_SECTION, "HealthCheck")
        .map(|j| serde_json::from_str(j).map_err(|e| format!("service {name}: HealthCheck=: {e}")))
        .transpose()?;
    Ok(ServiceConfig {
        argv,
        environment,
        working_directory,
        uid,
        gid,
        restart,
        restart_sec,
        stop_timeout,
        health_check,
        reload,
    })
}

/// A command line without its prefix characters, and whether it had `-` (failure
/// ignored); the other prefixes (`@:+!`) are refused.
fn strip_prefix<'a>(key: &str, line: &'a str, name: &str) -> Result<(&'a str, bool), String> {
    let mut line = line;
    let mut ignore_failure = false;
    while let Some(prefix) = line.chars().next().filter(|c| "-@:+!".contains(*c)) {
        if prefix != '-' {
            return Err(format!(
                "service {name}: the {key}= prefix `{prefix}` is not supported by the built-in \
                 supervisor"
            ));
        }
        ignore_failure = true;
        line = &line[1..];
    }
    Ok((line, ignore_failure))
}

/// `KEY=VALUE` lines of an environment file (comments with `#`, optional quotes).
fn parse_env_file(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_owned(), v.to_owned()))
        })
        .collect()
}

/// Splits a command line (`key` is `ExecStart` or `ExecReload`) into argv: specifiers, then
/// `${VAR}` anywhere and a whole-word `$VAR` (split at whitespace) from the service's
/// environment, `$$` for a `$`.
fn command_line(
    key: &str,
    line: &str,
    name: &str,
    env: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let words = unit::split_words(line).map_err(|e| format!("service {name}: {key}=: {e}"))?;
    let mut argv = Vec::new();
    for word in words {
        let word =
            unit::expand_specifiers(&word, name).map_err(|e| format!("service {name}: {e}"))?;
        if let Some(var) = word
            .strip_prefix('$')
            .filter(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        {
            argv.extend(
                env.get(var)
                    .map(|v| v.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                    .unwrap_or_default(),
            );
            continue;
        }
        let mut out = String::new();
        let mut rest = word.as_str();
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            if let Some(a) = after.strip_prefix('$') {
                out.push('$');
                rest = a;
            } else if let Some(a) = after.strip_prefix('{') {
                let Some(end) = a.find('}') else {
                    return Err(format!("service {name}: unterminated `${{` in {key}="));
                };
                out.push_str(env.get(&a[..end]).map_or("", String::as_str));
                rest = &a[end + 1..];
            } else {
                out.push('$');
                rest = after;
            }
        }
        out.push_str(rest);
        argv.push(out);
    }
    if argv.is_empty() {
        return Err(format!("service {name}: {key}= is empty"));
    }
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_expand_variables_and_specifiers() {
        let env = BTreeMap::from([
            ("PORT".to_owned(), "8080".to_owned()),
            ("OPTS".to_owned(), "-a  -b".to_owned()),
        ]);
        assert_eq!(
            command_line(
                "ExecStart",
                "/bin/srv --port=${PORT} $OPTS %N $$HOME",
                "web",
                &env
            )
            .expect("ok"),
            vec!["/bin/srv", "--port=8080", "-a", "-b", "web", "$HOME"]
        );
        let e = command_line("ExecStart", "/bin/srv %H", "web", &env).expect_err("unsupported");
        assert!(e.contains("%H"), "{e}");
    }

    #[test]
    fn reload_commands_take_the_main_pid_and_keep_their_prefix() {
        let unit = Unit::parse(
            "/etc/systemd/system/web.service",
            "[Service]\nEnvironment=SIG=HUP\nExecStart=/bin/srv\n\
             ExecReload=/bin/kill -${SIG} $MAINPID\nExecReload=-/bin/echo ${MAINPID}x\n",
        )
        .expect("unit");
        let host = crate::host::RealHost::new("/").expect("host");
        let c = from_unit(&host, "web", &unit).expect("config");
        assert_eq!(
            c.reload_commands("web", 4321).expect("commands"),
            vec![
                (
                    vec!["/bin/kill".to_owned(), "-HUP".to_owned(), "4321".to_owned()],
                    false
                ),
                (vec!["/bin/echo".to_owned(), "4321x".to_owned()], true),
            ]
        );
        let plain = Unit::parse("/x/web.service", "[Service]\nExecStart=/bin/srv\n").expect("unit");
        assert!(
            from_unit(&host, "web", &plain)
                .expect("config")
                .reload
                .is_empty()
        );
        let privileged = Unit::parse(
            "/x/web.service",
            "[Service]\nExecStart=/bin/srv\nExecReload=+/bin/x\n",
        )
        .expect("unit");
        assert_eq!(
            from_unit(&host, "web", &privileged),
            Err(
                "service web: the ExecReload= prefix `+` is not supported by the built-in \
                 supervisor"
                    .to_owned()
            )
        );
    }

    #[test]
    fn env_files_parse() {
        assert_eq!(
            parse_env_file("# c\nA=1\nB=\"two words\"\n\nC='x'\n"),
            BTreeMap::from([
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x".into())
            ])
        );
    }
}
