//! The systemd backend: `systemctl [--root=DIR] is-enabled|enable|disable`, and
//! `is-active|start|stop|restart|daemon-reload` against the host's running systemd; a reload
//! is `systemctl reload` for a unit with `ExecReload=` (`CanReload=yes`) and SIGHUP to the
//! main process (`systemctl kill --kill-who=main`) otherwise, as the built-in supervisor
//! does. Under a sandbox root nothing runs: services are observed stopped and a start,
//! restart or reload fails with a reason.

use super::{Backend, ServiceManager};
use crate::host::Host;
use crate::supervisor::protocol::ServiceStatus;
use std::path::{Path, PathBuf};

/// systemd through `systemctl`.
#[derive(Debug, Clone)]
pub struct SystemdManager {
    systemctl: PathBuf,
    root: PathBuf,
    sandbox: bool,
}

impl SystemdManager {
    /// `systemctl` is the program to run (a path, or a name looked up in `PATH`).
    pub fn new(systemctl: impl Into<PathBuf>, root: &Path) -> SystemdManager {
        let canonical = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
        SystemdManager {
            systemctl: systemctl.into(),
            sandbox: canonical != Path::new("/"),
            root: canonical,
        }
    }

    fn run(&self, args: &[&str]) -> Result<crate::host::ToolOutput, String> {
        let program = self.systemctl.to_string_lossy();
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let out = std::process::Command::new(&*program)
            .args(&args)
            .env("LC_ALL", "C")
            .env("SYSTEMD_PAGER", "")
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        Ok(crate::host::ToolOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs a command that must succeed.
    fn check(&self, args: &[&str]) -> Result<(), String> {
        let out = self.run(args)?;
        if out.success() {
            return Ok(());
        }
        Err(format!(
            "systemctl {} failed ({}): {}",
            args.join(" "),
            out.code
                .map_or_else(|| "killed".to_owned(), |c| format!("exit {c}")),
            out.stderr.trim()
        ))
    }

    fn root_arg(&self) -> Option<String> {
        self.sandbox
            .then(|| format!("--root={}", self.root.display()))
    }

    fn no_runtime(&self, what: &str, name: &str) -> String {
        format!(
            "cannot {what} {name}: under --root {} the systemd backend only manages unit files \
             and enablement (the host's systemd runs units from /); use --service-backend \
             supervisor to run services of a sandbox",
            self.root.display()
        )
    }
}

impl ServiceManager for SystemdManager {
    fn backend(&self) -> Backend {
        Backend::Systemd
    }

    fn is_enabled(&self, _host: &dyn Host, name: &str) -> Result<bool, String> {
        let unit = format!("{name}.service");
        let mut args: Vec<&str> = Vec::new();
        let root = self.root_arg();
        if let Some(r) = &root {
            args.push(r);
        }
        args.extend(["is-enabled", &unit]);
        let out = self.run(&args)?;
        match out.stdout.lines().next().unwrap_or("").trim() {
            "enabled" | "enabled-runtime" => Ok(true),
            "disabled" | "static" | "indirect" | "masked" | "masked-runtime" | "generated"
            | "transient" | "linked" | "linked-runtime" | "alias" | "bad" => Ok(false),
            _ if out.stderr.contains("No such file or directory") => Ok(false),
            _ => Err(format!(
                "systemctl {} gave no answer: {}",
                args.join(" "),
                out.stderr.trim()
            )),
        }
    }

    fn set_enabled(&self, _host: &dyn Host, name: &str, enabled: bool) -> Result<(), String> {
        let unit = format!("{name}.service");
        let mut args: Vec<&str> = Vec::new();
        let root = self.root_arg();
        if let Some(r) = &root {
            args.push(r);
        }
        args.extend([if enabled { "enable" } else { "disable" }, &unit]);
        self.check(&args)
    }

    fn is_running(&self, name: &str) -> Result<bool, String> {
        if self.sandbox {
            // Nothing under a sandbox root runs under the host's systemd.
            return Ok(false);
        }
        let unit = format!("{name}.service");
        let out = self.run(&["is-active", &unit])?;
        match out.stdout.lines().next().unwrap_or("").trim() {
            "active" | "reloading" | "activating" => Ok(true),
            "inactive" | "failed" | "deactivating" | "maintenance" => Ok(false),
            other => Err(format!(
                "systemctl is-active {unit} answered `{other}`: {}",
                out.stderr.trim()
            )),
        }
    }

    fn start(&self, name: &str) -> Result<(), String> {
        if self.sandbox {
            return Err(self.no_runtime("start", name));
        }
        self.check(&["start", &format!("{name}.service")])
    }

    fn stop(&self, name: &str) -> Result<(), String> {
        if self.sandbox {
            return Ok(());
        }
        self.check(&["stop", &format!("{name}.service")])
    }

    fn restart(&self, name: &str) -> Result<(), String> {
        if self.sandbox {
            return Err(self.no_runtime("restart", name));
        }
        self.check(&["restart", &format!("{name}.service")])
    }

    fn reload(&self, name: &str) -> Result<(), String> {
        if self.sandbox {
            return Err(self.no_runtime("reload", name));
        }
        let unit = format!("{name}.service");
        if !self.is_running(name)? {
            return Err(format!("cannot reload {name}: it is not running"));
        }
        let args = ["show", "--property=CanReload", "--value", unit.as_str()];
        let out = self.run(&args)?;
        if !out.success() {
            return Err(format!(
                "systemctl {} failed ({}): {}",
                args.join(" "),
                out.code
                    .map_or_else(|| "killed".to_owned(), |c| format!("exit {c}")),
                out.stderr.trim()
            ));
        }
        match out.stdout.trim() {
            "yes" => self.check(&["reload", &unit]),
            // systemd refuses to reload a unit without `ExecReload=`; the supervisor sends
            // SIGHUP to the main process then, and so does this backend.
            "no" => self.check(&["kill", "--kill-who=main", "--signal=SIGHUP", &unit]),
            other => Err(format!("systemctl {} answered `{other}`", args.join(" "))),
        }
    }

    fn reload_units(&self) -> Result<(), String> {
        if self.sandbox {
            return Ok(());
        }
        self.check(&["daemon-reload"])
    }

    fn status(&self, _name: &str) -> Result<Option<ServiceStatus>, String> {
        Ok(None)
    }
}
