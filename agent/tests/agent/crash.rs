//! Crash safety: the real `centossrv-agent apply` replacing 1,000 files is SIGKILLed at
//! random moments, again and again. After every kill each file is wholly old or wholly new
//! (content and mode together), no file is missing, the only debris are temporary files
//! under their own names, the generation store stays readable, and the next apply converges
//! with zero failures. Then rolling back to the first generation restores exactly what that
//! generation recorded.

use crate::util::*;
use state::digest::sha256;
use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DIRS: usize = 10;
const PER_DIR: usize = 100;
const RUNS: usize = 10;
const KILLS_PER_RUN: usize = 6;
const OLD_MODE: u32 = 0o644;
const NEW_MODE: u32 = 0o600;

fn host_path(d: usize, f: usize) -> String {
    format!("/data/d{d}/f{f:03}.conf")
}

fn content(d: usize, f: usize, version: &str) -> String {
    // Sizes vary from a line to a few KiB, so writes take different times.
    let filler = "abcdefghijklmnopqrstuvwxyz012345".repeat((d * PER_DIR + f) % 97 + 1);
    format!("# file {d}/{f} version {version}\n{filler}\n")
}

/// xorshift64*: reproducible delays without a random-number crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

struct Fixture {
    desired_path: std::path::PathBuf,
    old: HashMap<String, String>,
    new: HashMap<String, String>,
}

fn fixture(dir: &Path) -> Fixture {
    let mut specs = Vec::new();
    let mut old = HashMap::new();
    let mut new = HashMap::new();
    specs.push(dir_spec("/data"));
    for d in 0..DIRS {
        specs.push(dir_spec(&format!("/data/d{d}")));
    }
    for d in 0..DIRS {
        for f in 0..PER_DIR {
            let p = host_path(d, f);
            let new_content = content(d, f, "new");
            old.insert(p.clone(), sha256(content(d, f, "old").as_bytes()));
            new.insert(p.clone(), sha256(new_content.as_bytes()));
            specs.push(file(&p, &new_content, "0600"));
        }
    }
    let desired = desired(specs);
    Fixture {
        desired_path: write_desired(dir, "new.json", &desired),
        old,
        new,
    }
}

fn dir_spec(path: &str) -> state::Spec {
    dir(path, "0755")
}

fn install_old(sb: &Sandbox) {
    for d in 0..DIRS {
        std::fs::create_dir_all(sb.path(&format!("/data/d{d}"))).expect("mkdir");
        for f in 0..PER_DIR {
            sb.write(&host_path(d, f), &content(d, f, "old"), OLD_MODE);
        }
    }
}

fn spawn_apply(sb: &Sandbox, fx: &Fixture) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_centossrv-agent"))
        .arg("apply")
        .arg(&fx.desired_path)
        .arg("--root")
        .arg(&sb.root)
        .arg("--state-dir")
        .arg(&sb.state)
        .args(["--format", "json"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn centossrv-agent")
}

#[derive(Debug, Default)]
struct Check {
    new: usize,
    temps: usize,
}

/// Every file wholly old or wholly new (content and mode agree), none missing, and nothing
/// else in the directories but temporary files.
fn check(sb: &Sandbox, fx: &Fixture, context: &str) -> Check {
    let mut result = Check::default();
    for d in 0..DIRS {
        let dir = sb.path(&format!("/data/d{d}"));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        for name in &names {
            let is_final = name.starts_with('f') && name.ends_with(".conf");
            let is_temp = name.starts_with(".f") && name.ends_with(".conf.centossrv-tmp");
            assert!(
                is_final || is_temp,
                "{context}: unexpected {name} in {dir:?}"
            );
            result.temps += usize::from(is_temp);
        }
        for f in 0..PER_DIR {
            let p = host_path(d, f);
            let real = sb.path(&p);
            let bytes = std::fs::read(&real)
                .unwrap_or_else(|e| panic!("{context}: {p} is missing or unreadable: {e}"));
            let mode = std::fs::metadata(&real).expect("stat").permissions().mode() & 0o7777;
            let digest = sha256(&bytes);
            if digest == fx.new[&p] {
                assert_eq!(mode, NEW_MODE, "{context}: {p} is new with the old mode");
                result.new += 1;
            } else {
                assert_eq!(digest, fx.old[&p], "{context}: {p} is neither old nor new");
                assert_eq!(mode, OLD_MODE, "{context}: {p} is old with the new mode");
            }
        }
    }
    // Whatever was interrupted, the generation store is readable.
    sb.store()
        .list()
        .unwrap_or_else(|e| panic!("{context}: generations unreadable: {e}"));
    result
}

#[test]
fn sigkill_during_apply_leaves_every_file_old_or_new() {
    let total = DIRS * PER_DIR;
    // Calibrate: how long one uninterrupted apply takes here.
    let calibration = Sandbox::new();
    let fx = fixture(&calibration.base);
    install_old(&calibration);
    let started = Instant::now();
    let out = spawn_apply(&calibration, &fx)
        .wait_with_output()
        .expect("apply");
    let full = started.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(check(&calibration, &fx, "calibration").new, total);
    let window_ms = u64::try_from(full.as_millis())
        .unwrap_or(1000)
        .clamp(30, 5_000);

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
        | 1;
    let mut rng = Rng(seed);
    let (mut kills, mut finished_first, mut mixed, mut with_temps) = (0, 0, 0, 0);
    for run in 0..RUNS {
        let sb = Sandbox::new();
        install_old(&sb);
        let mut attempt = 0;
        let mut run_kills = 0;
        while run_kills < KILLS_PER_RUN {
            attempt += 1;
            // Half early (start-up, observation, recording the generation), half anywhere
            // in a whole apply.
            let window_us = if rng.next().is_multiple_of(2) {
                30_000
            } else {
                window_ms * 1000
            };
            let delay = Duration::from_micros(rng.next() % window_us);
            // Every third kill is aimed: as soon as the first file shows its new content,
            // the renames are under way (they take a few ms of a whole apply).
            let aimed = rng.next().is_multiple_of(3);
            let mut child = spawn_apply(&sb, &fx);
            if aimed {
                let first = host_path(0, 0);
                let want = fx.new.get(&first).cloned().unwrap_or_default();
                let deadline = Instant::now() + Duration::from_secs(10);
                while Instant::now() < deadline && child.try_wait().expect("try_wait").is_none() {
                    if std::fs::read(sb.path(&first)).is_ok_and(|b| sha256(&b) == want) {
                        break;
                    }
                }
            } else {
                std::thread::sleep(delay);
            }
            let context = format!("seed {seed}, run {run}, attempt {attempt}, delay {delay:?}");
            if child.try_wait().expect("try_wait").is_some() {
                finished_first += 1;
            } else {
                child.kill().expect("SIGKILL");
                kills += 1;
                run_kills += 1;
            }
            let status = child.wait().expect("wait");
            let c = check(&sb, &fx, &context);
            if status.signal_killed() && c.new > 0 && c.new < total {
                mixed += 1;
            }
            with_temps += usize::from(c.temps > 0);
            if c.new == total && run_kills < KILLS_PER_RUN {
                // Converged before enough kills: the next desired change, from old again.
                install_old(&sb);
            }
        }
        // The next apply converges with zero failures and leaves no debris.
        let out = spawn_apply(&sb, &fx).wait_with_output().expect("apply");
        let report: agent::ApplyReport =
            serde_json::from_slice(&out.stdout).expect("an apply report");
        assert_eq!(out.status.code(), Some(0), "run {run}: {report:#?}");
        assert_eq!(report.totals.failed, 0, "run {run}");
        let c = check(&sb, &fx, &format!("run {run} converged"));
        assert_eq!((c.new, c.temps), (total, 0), "run {run}");
        let gens = std::fs::read_dir(sb.state.join("generations")).expect("generations");
        for e in gens {
            let name = e.expect("entry").file_name();
            assert!(
                !name.to_string_lossy().starts_with('.'),
                "run {run}: {name:?} left over"
            );
        }
        let again = agent::apply(
            &sb.host(),
            &sb.store(),
            &serde_json::from_slice(&std::fs::read(&fx.desired_path).expect("read"))
                .expect("desired"),
            &agent::ApplyOptions::default(),
        )
        .expect("apply");
        assert_eq!((again.totals.changed, again.totals.failed), (0, 0));

        // Rolling back to the oldest generation restores exactly what it recorded.
        let store = sb.store();
        let first = *store
            .numbers()
            .expect("numbers")
            .first()
            .expect("a generation");
        let recorded = store.load(first).expect("load");
        let rollback = agent::rollback(&sb.host(), &store, Some(first), 10).expect("rollback");
        assert_eq!(rollback.totals.failed, 0, "run {run}");
        for entry in &recorded.paths {
            if let agent::generations::PathState::File { sha256: want, .. } = &entry.state {
                let have = sha256(&std::fs::read(sb.path(&entry.path)).expect("read"));
                assert_eq!(&have, want, "run {run}: {} after rollback", entry.path);
            }
        }
        check(&sb, &fx, &format!("run {run} rolled back"));
    }
    eprintln!(
        "crash test: seed {seed}, full apply {full:?}, {kills} kills over {RUNS} runs \
         ({mixed} left a mix of old and new files, {with_temps} checks saw temporary files, \
         {finished_first} applies finished before their kill); every check passed"
    );
    assert!(kills >= 50, "only {kills} kills");
    assert!(mixed > 0, "no kill landed while files were being replaced");
}

trait SignalKilled {
    fn signal_killed(&self) -> bool;
}

impl SignalKilled for std::process::ExitStatus {
    fn signal_killed(&self) -> bool {
        std::os::unix::process::ExitStatusExt::signal(self) == Some(9)
    }
}
