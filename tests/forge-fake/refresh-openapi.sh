#!/bin/sh
# Re-vendors the subset of GitHub's OpenAPI description the fake GitHub checks requests and
# responses against: installs `@octokit/openapi` (VERSION, default: latest) into a temporary
# directory and extracts the operations listed in extract-openapi-subset.js, `$ref`s
# resolved, into data/github-openapi-subset.json. Needs node and npm.
#
# usage: tests/forge-fake/refresh-openapi.sh [VERSION]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
version=${1:-latest}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npm install --prefix "$tmp" --no-audit --no-fund --no-save "@octokit/openapi@$version" >/dev/null
node "$here/extract-openapi-subset.js" "$tmp/node_modules/@octokit/openapi" \
  "$here/data/github-openapi-subset.json"
