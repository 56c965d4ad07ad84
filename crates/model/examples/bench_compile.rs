//! Compiler benchmark: a synthetic fleet repository of N nodes and R roles, compiled (which
//! renders every node's desired state) and serialized to JSON per node, as the CLI does.
//!
//! ```text
//! cargo run --release -p model --example bench_compile -- [--nodes N] [--roles R]
//! cargo run --release -p model --example bench_compile -- --sizes 1000,10000,50000 [--roles R]
//! ```
//!
//! Options: `--runs K` repeats compile and render K times in one process and reports the best
//! (default 1); `--dump DIR` also writes the synthetic repository to `DIR` (to run the CLI
//! on it). With `--sizes`, each size runs in a fresh child process so that its peak RSS
//! (`VmHWM`) is its own.
//!
//! Generation is deterministic (a fixed-seed LCG) and excluded from the figures.

use model::{Severity, Snapshot, compile};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

/// Values of the `role` label.
const ROLE_VALUES: [&str; 20] = [
    "web", "api", "db", "cache", "queue", "worker", "lb", "proxy", "mail", "dns", "ntp", "log",
    "metrics", "search", "storage", "backup", "auth", "cdn", "batch", "build",
];
const DCS: [&str; 3] = ["fra1", "ams1", "nyc1"];
const ENVS: [&str; 3] = ["prod", "staging", "dev"];
const RACKS: u64 = 40;

/// A 64-bit linear congruential generator (Knuth's MMIX constants); deterministic.
struct Lcg(u64);

impl Lcg {
    fn new(seed: u64) -> Lcg {
        let mut l = Lcg(seed ^ 0x9e37_79b9_7f4a_7c15);
        l.next();
        l
    }
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    /// Uniform-enough in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const FLEET: &str = r#"apiVersion: centossrv.io/v1
kind: Fleet
metadata:
  name: bench
spec:
  drift:
    mode: report
    interval: 5m
  vars:
    log_level: info
    ntp_servers: [ntp1.example.org, ntp2.example.org]
    settings: {max_conn: 1024, keepalive: 60}
    workers: 2
"#;

/// A config file: vars of all three levels, `node.*`, `role`, `fleet`, loops and a filter.
const APP_CONF: &str = r#"# {{ app }} on {{ node.name }} ({{ node.labels.dc }}/{{ node.labels.env }}), role {{ role }} of fleet {{ fleet }}
listen = 0.0.0.0:{{ port }}
workers = {{ workers }}
log_level = {{ log_level }}
{% for p in ports %}
upstream.{{ loop.index }} = {{ node.address }}:{{ p }}
{% endfor %}
{% for k, v in settings | items %}
{{ k }} = {{ v }}
{% endfor %}
{% for s in ntp_servers %}
ntp = {{ s | upper }}
{% endfor %}
"#;

/// A systemd unit.
const UNIT: &str = r#"[Unit]
Description={{ app }} (role {{ role }}) on {{ node.name }}
After=network-online.target

[Service]
ExecStart=/usr/bin/{{ app }} --port {{ port }} --workers {{ workers }}
{% for k, v in unit_env | items %}
Environment={{ k }}={{ v }}
{% endfor %}
Restart=on-failure

[Install]
WantedBy=multi-user.target
"#;

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUbench0000000000000000000000000000wCgYIKoZIzj0E\nAwIwFzEVMBMGA1UEAwwMYmVuY2gtcm9vdC1jYTAeFw0yNDAxMDEwMDAwMDBaFw0z\n-----END CERTIFICATE-----\n";

fn node_doc(i: u64, rng: &mut Lcg) -> (String, String) {
    let name = format!("node-{i:05}");
    let role = rng.pick(&ROLE_VALUES);
    let dc = rng.pick(&DCS);
    let env = rng.pick(&ENVS);
    let rack = rng.below(RACKS) + 1;
    let maintenance = if rng.chance(5) {
        ", maintenance: \"true\""
    } else {
        ""
    };
    let workers = 2 << rng.below(4);
    let cache = 64 << rng.below(4);
    let tier = rng.pick(&["gold", "silver", "bronze"]);
    let text = format!(
        "apiVersion: centossrv.io/v1
kind: Node
metadata:
  name: {name}
  labels: {{role: {role}, dc: {dc}, env: {env}, rack: {dc}-r{rack:02}{maintenance}}}
spec:
  address: 10.{}.{}.{}
  vars:
    workers: {workers}
    tier: {tier}
    settings: {{max_conn: 4096, keepalive: 30, cache_mb: {cache}}}
",
        i >> 16,
        (i >> 8) & 0xff,
        i & 0xff,
    );
    (format!("nodes/{name}.yaml"), text)
}

/// The selector of role `i`: a few roles for every node, the rest a mix of `matchLabels`
/// and `matchExpressions` sized so a node lands on about 11 roles (5 to 15).
fn selector(i: usize) -> String {
    let v = |k: usize| ROLE_VALUES[k % ROLE_VALUES.len()];
    let d = |k: usize| DCS[k % DCS.len()];
    let e = |k: usize| ENVS[k % ENVS.len()];
    match i {
        0 => " {}".into(),
        1 => "\n    matchExpressions:\n      - {key: env, operator: Exists}".into(),
        2 => format!(
            "\n    matchExpressions:\n      - {{key: dc, operator: In, values: [{}, {}, {}]}}",
            d(0),
            d(1),
            d(2)
        ),
        3 => "\n    matchExpressions:\n      - {key: rack, operator: Exists}\n      - {key: role, operator: NotIn, values: [none]}".into(),
        _ => {
            let j = i / 4;
            match i % 4 {
                0 => format!("\n    matchLabels: {{role: {}}}", v(j)),
                1 => format!("\n    matchLabels: {{role: {}, env: {}}}", v(j + 3), e(j)),
                2 => format!(
                    "\n    matchExpressions:\n      - {{key: role, operator: In, values: [{}, {}]}}\n      - {{key: dc, operator: In, values: [{}, {}]}}",
                    v(j + 5),
                    v(j + 12),
                    d(j),
                    d(j + 1)
                ),
                _ => format!(
                    "\n    matchLabels: {{dc: {}}}\n    matchExpressions:\n      - {{key: role, operator: In, values: [{}, {}]}}\n      - {{key: env, operator: NotIn, values: [dev]}}\n      - {{key: maintenance, operator: DoesNotExist}}",
                    d(j),
                    v(j + 8),
                    v(j + 15)
                ),
            }
        }
    }
}

/// Role `i` with 5 to 10 resources of every type; names are unique per role except a few
/// shared declarations that are identical in every role (merged on the node).
fn role_doc(i: usize, rng: &mut Lcg) -> (String, String, usize) {
    let name = format!("role-{i:03}");
    let app = format!("app{i:03}");
    let port = 8000 + i % 50_000;
    let mut res: Vec<String> = Vec::new();
    let has_service = i >= 4 && !rng.chance(20);
    let shared_pkg = rng.chance(40);
    let shared_dir = rng.chance(30);

    res.push(format!(
        "    - package: {app}-server\n      version: \"1.{}.{}-1.el9\"",
        i % 7,
        i % 13
    ));
    if shared_pkg {
        res.push("    - package: rsyslog".into());
    }
    if rng.chance(50) {
        res.push(format!(
            "    - group: {app}\n      gid: {}\n      system: true",
            20_000 + i
        ));
        res.push(format!(
            "    - user: {app}\n      uid: {}\n      group: {app}\n      groups: [adm, {app}]\n      home: /var/lib/{app}\n      shell: /sbin/nologin\n      comment: \"{app} service account\"\n      system: true\n      requires: [\"group:{app}\"]",
            20_000 + i
        ));
    }
    res.push(format!(
        "    - directory: /etc/{app}\n      mode: \"0755\"\n      owner: root\n      group: root"
    ));
    let notify = if has_service {
        format!("\n      notify: [\"service:{app}\"]")
    } else {
        String::new()
    };
    res.push(format!(
        "    - file: /etc/{app}/{app}.conf\n      template: files/app.conf.j2\n      mode: \"640\"\n      owner: root\n      group: root{notify}"
    ));
    res.push(format!(
        "    - file: /etc/{app}/banner\n      content: |\n        Managed by centossrv: role {name}.\n        Do not edit by hand.\n      mode: \"0644\""
    ));
    if rng.chance(40) {
        res.push(format!(
            "    - file: /etc/pki/{app}/ca.pem\n      source: files/static/ca.pem\n      mode: \"0444\""
        ));
    }
    if shared_dir {
        res.push("    - directory: /etc/centossrv.d\n      mode: \"0755\"".into());
        res.push(format!(
            "    - symlink: /etc/centossrv.d/{app}.conf\n      target: /etc/{app}/{app}.conf"
        ));
    }
    res.push(format!(
        "    - sysctl: net.ipv4.conf.{app}.forwarding\n      value: {}",
        i % 2
    ));
    if rng.chance(30) {
        res.push("    - sysctl: vm.swappiness\n      value: 10".into());
    }
    if has_service {
        let unit = if rng.chance(60) {
            "\n      unit: {template: files/unit.service.j2}"
        } else {
            ""
        };
        let check = match rng.below(3) {
            0 => format!(
                "\n      healthCheck: {{http: \"http://127.0.0.1:{port}/healthz\", interval: 15s}}"
            ),
            1 => format!("\n      healthCheck: {{tcp: \"127.0.0.1:{port}\", retries: 5}}"),
            _ => format!("\n      healthCheck: {{exec: [/usr/bin/{app}, --check], timeout: 1s}}"),
        };
        res.push(format!(
            "    - service: {app}\n      enabled: true\n      restart: on-failure{unit}{check}\n      environment: {{APP_PORT: \"{port}\", APP_ROLE: {name}}}\n      requires: [\"package:{app}-server\", \"file:/etc/{app}/banner\"]"
        ));
    }
    let count = res.len();
    let text = format!(
        "apiVersion: centossrv.io/v1
kind: Role
metadata:
  name: {name}
  labels: {{team: t{}}}
spec:
  selector:{}
  vars:
    app: {app}
    port: {port}
    ports: [{port}, {}, {}]
    unit_env: {{APP_NAME: {app}, GOMAXPROCS: \"2\"}}
  resources:
{}
",
        i % 9,
        selector(i),
        port + 1000,
        port + 2000,
        res.join("\n")
    );
    (format!("roles/{name}.yaml"), text, count)
}

/// The synthetic repository and how many resource declarations its roles hold.
fn generate(nodes: u64, roles: usize) -> (Snapshot, usize) {
    let mut snap = Snapshot::new(Some("0123456789abcdef0123456789abcdef01234567".into()));
    snap.insert("centossrv.yaml", FLEET.as_bytes().to_vec());
    snap.insert("files/app.conf.j2", APP_CONF.as_bytes().to_vec());
    snap.insert("files/unit.service.j2", UNIT.as_bytes().to_vec());
    snap.insert("files/static/ca.pem", CA_PEM.as_bytes().to_vec());
    let mut rng = Lcg::new(42);
    for i in 1..=nodes {
        let (path, text) = node_doc(i, &mut rng);
        snap.insert(path, text.into_bytes());
    }
    let mut decls = 0;
    let mut rng = Lcg::new(7);
    for i in 0..roles {
        let (path, text, count) = role_doc(i, &mut rng);
        decls += count;
        snap.insert(path, text.into_bytes());
    }
    (snap, decls)
}

/// `VmHWM` (peak resident set) of this process, in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// CPU time (user + system, all threads) this process has used, in ms; 10 ms resolution.
/// On a busy machine it shows the work done, where wall time also counts waiting for a core.
fn cpu_ms() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    // utime and stime are fields 14 and 15 of stat(5), 12 and 13 here; USER_HZ is 100.
    (ticks(11) + ticks(12)) * 10.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One measured size.
struct Row {
    nodes: u64,
    roles: usize,
    role_decls: usize,
    resources: usize,
    roles_per_node: f64,
    errors: usize,
    warnings: usize,
    gen_ms: f64,
    compile_ms: f64,
    render_ms: f64,
    cpu_ms: f64,
    json_mib: f64,
    rss_gen_mib: f64,
    rss_peak_mib: f64,
}

impl Row {
    fn to_line(&self) -> String {
        format!(
            "ROW {} {} {} {} {} {} {} {} {} {} {} {} {} {}",
            self.nodes,
            self.roles,
            self.role_decls,
            self.resources,
            self.roles_per_node,
            self.errors,
            self.warnings,
            self.gen_ms,
            self.compile_ms,
            self.render_ms,
            self.cpu_ms,
            self.json_mib,
            self.rss_gen_mib,
            self.rss_peak_mib
        )
    }

    fn from_line(line: &str) -> Option<Row> {
        let f: Vec<&str> = line.strip_prefix("ROW ")?.split(' ').collect();
        if f.len() != 14 {
            return None;
        }
        Some(Row {
            nodes: f[0].parse().ok()?,
            roles: f[1].parse().ok()?,
            role_decls: f[2].parse().ok()?,
            resources: f[3].parse().ok()?,
            roles_per_node: f[4].parse().ok()?,
            errors: f[5].parse().ok()?,
            warnings: f[6].parse().ok()?,
            gen_ms: f[7].parse().ok()?,
            compile_ms: f[8].parse().ok()?,
            render_ms: f[9].parse().ok()?,
            cpu_ms: f[10].parse().ok()?,
            json_mib: f[11].parse().ok()?,
            rss_gen_mib: f[12].parse().ok()?,
            rss_peak_mib: f[13].parse().ok()?,
        })
    }
}

fn header() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("{cores} core(s) available");
    println!(
        "| nodes | roles | role decls | resources | roles/node | errors/warnings | compile ms | render ms | total ms | CPU ms | JSON MiB | peak RSS MiB | gen ms | RSS after gen MiB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
}

fn legend() {
    println!();
    println!(
        "resources: desired resources over all nodes; roles/node: roles selecting a node, mean"
    );
    println!("compile: model::compile (load, check, render every node's desired state)");
    println!("render: serde_json::to_vec of every node's DesiredState; total = compile + render");
    println!("CPU: user + system time of both, all threads; peak RSS: VmHWM of the process");
    println!("gen: building the synthetic snapshot in memory, not part of the total");
}

fn print_row(r: &Row) {
    println!(
        "| {} | {} | {} | {} | {:.1} | {}/{} | {:.0} | {:.0} | {:.0} | {:.0} | {:.1} | {:.0} | {:.0} | {:.0} |",
        r.nodes,
        r.roles,
        r.role_decls,
        r.resources,
        r.roles_per_node,
        r.errors,
        r.warnings,
        r.compile_ms,
        r.render_ms,
        r.compile_ms + r.render_ms,
        r.cpu_ms,
        r.json_mib,
        r.rss_peak_mib,
        r.gen_ms,
        r.rss_gen_mib
    );
}

fn measure(nodes: u64, roles: usize, runs: u32, dump: Option<&str>) -> Result<Row, String> {
    let t = Instant::now();
    let (snap, role_decls) = generate(nodes, roles);
    let gen_ms = ms(t.elapsed());
    let rss_gen_mib = peak_rss_mib();
    if let Some(dir) = dump {
        for (path, bytes) in &snap.files {
            let full = std::path::Path::new(dir).join(path);
            if let Some(parent) = full.parent() {
                std::fs::create_dir_all(parent).map_err(|e| format!("{dir}: {e}"))?;
            }
            std::fs::write(&full, bytes).map_err(|e| format!("{}: {e}", full.display()))?;
        }
    }

    let mut best: Option<Row> = None;
    for _ in 0..runs.max(1) {
        let cpu0 = cpu_ms();
        let t = Instant::now();
        let compiled = compile(&snap);
        let compile_ms = ms(t.elapsed());

        let errors: Vec<_> = compiled
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .collect();
        if !errors.is_empty() {
            let mut msg = format!(
                "the synthetic repository has {} error(s); the first ones:",
                errors.len()
            );
            for d in errors.iter().take(5) {
                msg.push_str(&format!("\n  {d}"));
            }
            return Err(msg);
        }

        let t = Instant::now();
        let mut json_bytes = 0usize;
        let mut resources = 0usize;
        for (_, desired) in compiled.model.desired() {
            let bytes = serde_json::to_vec(desired).map_err(|e| e.to_string())?;
            json_bytes += bytes.len();
            resources += desired.resources.len();
        }
        let render_ms = ms(t.elapsed());
        let cpu_ms = cpu_ms() - cpu0;

        if runs > 1 {
            eprintln!(
                "  {nodes} nodes: compile {compile_ms:.0} ms, render {render_ms:.0} ms, CPU {cpu_ms:.0} ms"
            );
        }
        let role_links: usize = compiled.model.nodes.values().map(|n| n.roles.len()).sum();
        let row = Row {
            nodes,
            roles,
            role_decls,
            resources,
            roles_per_node: role_links as f64 / nodes.max(1) as f64,
            errors: 0,
            warnings: compiled.diagnostics.len(),
            gen_ms,
            compile_ms,
            render_ms,
            cpu_ms,
            json_mib: json_bytes as f64 / (1024.0 * 1024.0),
            rss_gen_mib,
            rss_peak_mib: 0.0,
        };
        if best
            .as_ref()
            .is_none_or(|b| row.compile_ms + row.render_ms < b.compile_ms + b.render_ms)
        {
            best = Some(row);
        }
        drop(compiled);
    }
    let mut row = best.ok_or("no run")?;
    row.rss_peak_mib = peak_rss_mib();
    Ok(row)
}

struct Args {
    sizes: Vec<u64>,
    roles: usize,
    runs: u32,
    dump: Option<String>,
    child: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        sizes: vec![10_000],
        roles: 200,
        runs: 1,
        dump: None,
        child: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--nodes" => args.sizes = vec![value()?.parse().map_err(|e| format!("--nodes: {e}"))?],
            "--roles" => args.roles = value()?.parse().map_err(|e| format!("--roles: {e}"))?,
            "--runs" => args.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--sizes" => {
                args.sizes = value()?
                    .split(',')
                    .map(|s| s.trim().replace('_', "").parse::<u64>())
                    .collect::<Result<_, _>>()
                    .map_err(|e| format!("--sizes: {e}"))?
            }
            "--dump" => args.dump = Some(value()?),
            "--child" => args.child = true,
            "-h" | "--help" => {
                return Err("usage: bench_compile [--nodes N | --sizes N1,N2,...] [--roles R] [--runs K] [--dump DIR]".into());
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    if args.sizes.is_empty() || args.roles == 0 {
        return Err("need at least one node count and one role".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    if args.child || args.sizes.len() == 1 {
        let Some(&nodes) = args.sizes.first() else {
            return ExitCode::from(2);
        };
        return match measure(nodes, args.roles, args.runs, args.dump.as_deref()) {
            Ok(row) if args.child => {
                println!("{}", row.to_line());
                ExitCode::SUCCESS
            }
            Ok(row) => {
                header();
                print_row(&row);
                legend();
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if args.dump.is_some() {
        eprintln!("--dump takes a single size (--nodes N)");
        return ExitCode::from(2);
    }
    // Several sizes: one child process each, so every row's peak RSS is its own.
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("cannot find this executable: {e}");
            return ExitCode::FAILURE;
        }
    };
    header();
    for &nodes in &args.sizes {
        let out = Command::new(&exe)
            .args(["--child", "--nodes", &nodes.to_string()])
            .args(["--roles", &args.roles.to_string()])
            .args(["--runs", &args.runs.to_string()])
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                eprintln!("cannot run {}: {e}", exe.display());
                return ExitCode::FAILURE;
            }
        };
        let stdout = String::from_utf8_lossy(&out.stdout);
        match stdout.lines().find_map(Row::from_line) {
            Some(row) if out.status.success() => print_row(&row),
            _ => {
                eprint!("{}", String::from_utf8_lossy(&out.stderr));
                eprintln!("size {nodes} failed ({})", out.status);
                return ExitCode::FAILURE;
            }
        }
    }
    legend();
    ExitCode::SUCCESS
}
