#!/usr/bin/env bash
# Vendors GitHub's example webhook payloads for the forge webhook tests
# (reconciler/tests/forge_webhook.rs) from the npm package @octokit/webhooks-examples:
# every `pull_request`, `push`, `issue_comment` and `ping` example, as
# tests/forge-fake/data/github-webhook-examples.json
#   {"package": "@octokit/webhooks-examples", "version": "...", "events": {NAME: [payload...]}}
# The payloads are unsigned; the tests sign them.
#
# Usage: tests/forge-fake/refresh-webhook-examples.sh [VERSION]   (default: the pinned one)
# Needs npm and node. The GitLab examples (gitlab-webhook-examples.json) are copied by hand
# from GitLab's documentation; see the "source" field in that file.
set -euo pipefail

version="${1:-7.6.1}"
here="$(cd "$(dirname "$0")" && pwd)"
out="$here/data/github-webhook-examples.json"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
npm install --no-save --no-audit --no-fund --ignore-scripts --silent \
    "@octokit/webhooks-examples@$version" >/dev/null
OUT="$out" node - <<'JS'
const fs = require("fs");
const pkg = require("@octokit/webhooks-examples/package.json");
const all = require("@octokit/webhooks-examples/api.github.com/index.json");
const wanted = ["pull_request", "push", "issue_comment", "ping"];
const events = {};
for (const name of wanted) {
  const entry = all.find((e) => e.name === name);
  if (!entry) throw new Error(`no ${name} examples in ${pkg.name}@${pkg.version}`);
  events[name] = entry.examples;
}
const doc = { package: pkg.name, version: pkg.version, events };
fs.writeFileSync(process.env.OUT, JSON.stringify(doc, null, 1) + "\n");
const counts = wanted.map((n) => `${n}: ${events[n].length}`).join(", ");
console.log(`wrote ${process.env.OUT} from ${pkg.name}@${pkg.version} (${counts})`);
JS
