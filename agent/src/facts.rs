//! Host facts for the agent's heartbeat: OS (os-release), kernel, hostname, CPUs, memory,
//! mounted filesystems and network interfaces, read from `/proc`, `/sys` and `statvfs(2)`.
//! The parsers are pure functions over text (unit-tested); [`collect`] does the reading.
//! A fact that cannot be read is left out: facts are informational, never an error.

use serde_json::{Value as Json, json};
use std::collections::BTreeMap;
use std::path::Path;

/// Facts of this host. `root` is the agent's `--root`: the OS is read from
/// `ROOT/etc/os-release`; everything else describes the running kernel and machine.
pub fn collect(root: &Path) -> BTreeMap<String, Json> {
    let mut facts = BTreeMap::new();
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    if let Some(text) = read(&root.join("etc/os-release")) {
        facts.insert("os".to_owned(), os_release(&text));
    }
    let uname = rustix::system::uname();
    facts.insert(
        "kernel".to_owned(),
        json!({
            "name": uname.sysname().to_string_lossy(),
            "release": uname.release().to_string_lossy(),
            "version": uname.version().to_string_lossy(),
            "machine": uname.machine().to_string_lossy(),
        }),
    );
    facts.insert(
        "hostname".to_owned(),
        Json::String(uname.nodename().to_string_lossy().into_owned()),
    );
    if let Some(text) = read(Path::new("/proc/cpuinfo")) {
        facts.insert("cpu".to_owned(), cpuinfo(&text));
    }
    if let Some(text) = read(Path::new("/proc/meminfo")) {
        facts.insert("memory".to_owned(), meminfo(&text));
    }
    if let Some(text) = read(Path::new("/proc/self/mounts")) {
        let disks: Vec<Json> = mounts(&text)
            .into_iter()
            .filter_map(|m| {
                let st = rustix::fs::statvfs(m.target.as_str()).ok()?;
                let frsize = st.f_frsize;
                Some(json!({
                    "device": m.source,
                    "mount": m.target,
                    "fstype": m.fstype,
                    "size_bytes": st.f_blocks.saturating_mul(frsize),
                    "free_bytes": st.f_bavail.saturating_mul(frsize),
                }))
            })
            .collect();
        facts.insert("disks".to_owned(), Json::Array(disks));
    }
    let v6 = read(Path::new("/proc/net/if_inet6"))
        .map(|t| if_inet6(&t))
        .unwrap_or_default();
    facts.insert(
        "interfaces".to_owned(),
        Json::Array(interfaces(Path::new("/sys/class/net"), &v6)),
    );
    facts
}

/// `os-release`: NAME, VERSION_ID, ID, ID_LIKE, PRETTY_NAME (quotes removed).
pub fn os_release(text: &str) -> Json {
    let mut out = serde_json::Map::new();
    for line in text.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let field = match key {
            "NAME" => "name",
            "ID" => "id",
            "ID_LIKE" => "id_like",
            "VERSION_ID" => "version_id",
            "PRETTY_NAME" => "pretty_name",
            _ => continue,
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        out.insert(field.to_owned(), Json::String(value.to_owned()));
    }
    Json::Object(out)
}

/// `/proc/cpuinfo`: the number of processors and the first model name.
pub fn cpuinfo(text: &str) -> Json {
    let mut count = 0u64;
    let mut model = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key.trim() {
            "processor" => count += 1,
            "model name" if model.is_none() => model = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    json!({ "count": count, "model": model })
}

/// `/proc/meminfo`: MemTotal and MemAvailable in bytes.
pub fn meminfo(text: &str) -> Json {
    let mut out = serde_json::Map::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let field = match key {
            "MemTotal" => "total_bytes",
            "MemAvailable" => "available_bytes",
            _ => continue,
        };
        let mut parts = value.split_whitespace();
        let Some(n) = parts.next().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let bytes = if parts.next() == Some("kB") {
            n.saturating_mul(1024)
        } else {
            n
        };
        out.insert(field.to_owned(), json!(bytes));
    }
    Json::Object(out)
}

/// One mounted filesystem on a block device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub source: String,
    pub target: String,
    pub fstype: String,
}

/// `/proc/self/mounts`: filesystems backed by a device (`/dev/...`), each mount point once;
/// octal escapes (`\040` for a space) decoded.
pub fn mounts(text: &str) -> Vec<Mount> {
    let mut out: Vec<Mount> = Vec::new();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let (Some(source), Some(target), Some(fstype)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if !source.starts_with("/dev/") {
            continue;
        }
        let target = unescape_octal(target);
        if out.iter().any(|m| m.target == target) {
            continue;
        }
        out.push(Mount {
            source: unescape_octal(source),
            target,
            fstype: fstype.to_owned(),
        });
    }
    out
}

fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `/proc/net/if_inet6`: interface name -> IPv6 addresses with prefix length.
pub fn if_inet6(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [hex, _, prefix, _, _, name] = f[..] else {
            continue;
        };
        let Ok(bits) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        let Ok(prefix) = u8::from_str_radix(prefix, 16) else {
            continue;
        };
        let addr = std::net::Ipv6Addr::from(bits);
        out.entry(name.to_owned())
            .or_default()
            .push(format!("{addr}/{prefix}"));
    }
    out
}

/// `/sys/class/net/*`: name, MAC, MTU, operational state and IPv6 addresses. IPv4
/// addresses need a netlink or ioctl query this build does not make.
pub fn interfaces(dir: &Path, v6: &BTreeMap<String, Vec<String>>) -> Vec<Json> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let attr = |name: &str, a: &str| {
        std::fs::read_to_string(dir.join(name).join(a))
            .ok()
            .map(|s| s.trim().to_owned())
    };
    names
        .iter()
        .map(|name| {
            json!({
                "name": name,
                "mac": attr(name, "address"),
                "mtu": attr(name, "mtu").and_then(|m| m.parse::<u64>().ok()),
                "state": attr(name, "operstate"),
                "ipv6": v6.get(name).cloned().unwrap_or_default(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_release_strips_quotes() {
        let text = "NAME=\"CentOS Stream\"\nVERSION_ID='9'\nID=centos\nID_LIKE=\"rhel fedora\"\n# x\nPRETTY_NAME=\"CentOS Stream 9\"\nHOME_URL=x\n";
        assert_eq!(
            os_release(text),
            json!({"name": "CentOS Stream", "version_id": "9", "id": "centos", "id_like": "rhel fedora", "pretty_name": "CentOS Stream 9"})
        );
    }

    #[test]
    fn cpu_and_memory() {
        let cpu = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\nflags\t: fpu\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R)\n";
        assert_eq!(
            cpuinfo(cpu),
            json!({"count": 2, "model": "Intel(R) Xeon(R)"})
        );
        let mem = "MemTotal:        2048 kB\nMemFree:  1 kB\nMemAvailable:    1024 kB\n";
        assert_eq!(
            meminfo(mem),
            json!({"total_bytes": 2_097_152, "available_bytes": 1_048_576})
        );
    }

    #[test]
    fn mounts_keep_devices_once_and_decode_escapes() {
        let text = "proc /proc proc rw 0 0\n/dev/sda1 / xfs rw 0 0\n/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n/dev/sda1 / xfs rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n";
        assert_eq!(
            mounts(text),
            vec![
                Mount {
                    source: "/dev/sda1".into(),
                    target: "/".into(),
                    fstype: "xfs".into()
                },
                Mount {
                    source: "/dev/sdb1".into(),
                    target: "/mnt/my disk".into(),
                    fstype: "ext4".into()
                },
            ]
        );
    }

    #[test]
    fn inet6_addresses() {
        let text = "00000000000000000000000000000001 01 80 10 80       lo\nfe800000000000000a0027fffe1a2b3c 02 40 20 80     eth0\n";
        let v6 = if_inet6(text);
        assert_eq!(v6["lo"], vec!["::1/128".to_owned()]);
        assert_eq!(v6["eth0"], vec!["fe80::a00:27ff:fe1a:2b3c/64".to_owned()]);
    }

    #[test]
    fn collect_reads_this_host() {
        let facts = collect(Path::new("/"));
        assert!(facts["hostname"].as_str().is_some_and(|h| !h.is_empty()));
        assert!(facts["cpu"]["count"].as_u64().is_some_and(|n| n >= 1));
        assert!(
            facts["memory"]["total_bytes"]
                .as_u64()
                .is_some_and(|n| n > 0)
        );
    }
}
