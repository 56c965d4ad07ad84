#!/usr/bin/env python3
"""bench-peers adapter for our own agent, `centossrv-agent` (see ../shared/bench-peers).

The harness's spec (one directory, N files with content and mode) becomes a
`state::DesiredState` (format 1): one `directory` resource and N `file` resources that
require it. The agent manages absolute paths on `/` (`--root /`), with its generations and
lock in the spec's `state_dir`.

  apply: centossrv-agent --root / --state-dir STATE --format json apply desired.json
  plan:  centossrv-agent --root / --state-dir STATE --format json plan desired.json

Both print JSON: the apply report's `resources[]` with `outcome: changed`, and the plan's
`changes[]`, give the changed / would-change paths.

The binary is `$CENTOSSRV_AGENT`, else `target/release/centossrv-agent` of this workspace
(`cargo build --release -p agent`).
"""
import hashlib, json, os, subprocess, sys

HERE = os.path.dirname(os.path.abspath(__file__))
WORKSPACE = os.path.dirname(os.path.dirname(HERE))
AGENT = os.environ.get("CENTOSSRV_AGENT",
                       os.path.join(WORKSPACE, "target", "release", "centossrv-agent"))


def install():
    if not os.path.exists(AGENT):
        subprocess.run(["cargo", "build", "--release", "-p", "agent"], cwd=WORKSPACE, check=True)


def version():
    return subprocess.run([AGENT, "--version"], capture_output=True, text=True,
                          check=True).stdout.strip()


def origin():
    return {"role": "cmbench", "file": "bench/peers/centossrv.py", "line": 1}


def render(spec, d):
    root = spec["root"]
    dir_id = f"directory:{root}"
    resources = [{"id": dir_id,
                  "spec": {"type": "directory", "path": root, "ensure": "present",
                           "mode": spec["dir_mode"]},
                  "origin": origin()}]
    for f in spec["files"]:
        data = f["content"].encode()
        resources.append({
            "id": f"file:{f['path']}",
            "spec": {"type": "file", "path": f["path"], "ensure": "present",
                     "content": f["content"],
                     "sha256": "sha256:" + hashlib.sha256(data).hexdigest(),
                     "mode": f["mode"]},
            "requires": [dir_id],
            "origin": origin()})
    desired = {"format": 1, "node": "cmbench", "resources": resources}
    with open(os.path.join(d, "desired.json"), "w") as fh:
        json.dump(desired, fh, indent=1)
    with open(os.path.join(d, "state_dir"), "w") as fh:
        fh.write(spec["state_dir"])


def cmd(mode, d):
    state_dir = open(os.path.join(d, "state_dir")).read().strip()
    return [AGENT, "--root", "/", "--state-dir", state_dir, "--format", "json",
            mode, os.path.join(d, "desired.json")]


def path_of(resource_id):
    kind, _, path = resource_id.partition(":")
    return path if kind in ("file", "directory", "symlink") else None


def parse(mode, text):
    # The log is stdout+stderr; the JSON document is the first `{` line to the end.
    start = text.find("{")
    doc = json.loads(text[start:]) if start >= 0 else {}
    if mode == "plan":
        ids = [c["id"] for c in doc.get("changes", []) if c.get("action") != "unmanage"]
    else:
        ids = [r["id"] for r in doc.get("resources", []) if r.get("outcome") == "changed"]
        failed = [r["id"] for r in doc.get("resources", []) if r.get("outcome") == "failed"]
        if failed:
            raise SystemExit(f"{len(failed)} resources failed, e.g. {failed[:2]}")
    return [p for p in map(path_of, ids) if p]


def main():
    """The harness's adapter CLI (see its adapters/_common.py), self-contained here."""
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    op = a[0]
    if op == "install":
        install()
    elif op == "version":
        print(version())
    elif op == "render":
        spec = json.load(open(a[1]))
        os.makedirs(a[2], exist_ok=True)
        render(spec, a[2])
    elif op == "cmd":
        print(json.dumps(cmd(a[1], a[2])))
    elif op == "parse":
        print(json.dumps(sorted(set(parse(a[1], open(a[2], errors="replace").read())))))
    else:
        sys.exit(f"unknown op {op}")


if __name__ == "__main__":
    main()
