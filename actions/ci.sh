#!/usr/bin/env bash
# centossrv in a fleet repository's CI: validate, then plan the change request.
#
# Used by the GitHub Action (github/action.yml) and mirrored by the GitLab template
# (gitlab/centossrv.gitlab-ci.yml). Everything comes from the environment, so no
# expression of the CI system is ever spliced into shell code:
#
#   CENTOSSRV         the centossrv binary (default: `centossrv` on PATH)
#   CENTOSSRV_PATH    the fleet repository (a folder in a Git work tree; default `.`)
#   CENTOSSRV_BASE    the base revision (the PR's target); empty: every change is intent
#   CENTOSSRV_HEAD    the head revision (default HEAD)
#   CENTOSSRV_FORGE   github | gitlab: whose comment size limit the Markdown fits
#   CENTOSSRV_PR      the pull/merge request number, if any
#   CENTOSSRV_LINK    a link to the full plan (e.g. the CI run), shown in the report
#   CENTOSSRV_OUT     where the report files go (default centossrv-report)
#   CENTOSSRV_FAIL_ON_CHANGES  "true": exit 2 when the plan changes something
#
# Writes $CENTOSSRV_OUT/{diagnostics.json,validate.txt,plan.md,plan.json,plan.txt}.
# Exit status: 0 valid (and no changes when CENTOSSRV_FAIL_ON_CHANGES=true), 1 the fleet
# does not compile or planning failed, 2 changes with CENTOSSRV_FAIL_ON_CHANGES=true.
# When GITHUB_STEP_SUMMARY / GITHUB_OUTPUT are set, the Markdown is appended to the job
# summary and `exit-code`, `changes` and `report-dir` are written as step outputs.
set -uo pipefail

bin="${CENTOSSRV:-centossrv}"
repo="${CENTOSSRV_PATH:-.}"
base="${CENTOSSRV_BASE:-}"
head="${CENTOSSRV_HEAD:-HEAD}"
forge="${CENTOSSRV_FORGE:-github}"
out="${CENTOSSRV_OUT:-centossrv-report}"

if ! command -v "$bin" >/dev/null 2>&1; then
  echo "error: the centossrv binary '$bin' was not found (set CENTOSSRV or put it on PATH)" >&2
  exit 1
fi
mkdir -p "$out" || exit 1

summary() {
  if [ -n "${GITHUB_STEP_SUMMARY:-}" ]; then cat >>"$GITHUB_STEP_SUMMARY"; else cat >/dev/null; fi
}
output() {
  if [ -n "${GITHUB_OUTPUT:-}" ]; then printf '%s=%s\n' "$1" "$2" >>"$GITHUB_OUTPUT"; fi
}
output report-dir "$out"

# 1. Validate the working tree: every problem at once, with file:line:column.
"$bin" validate --format json "$repo" >"$out/diagnostics.json"
validate_status=$?
"$bin" validate "$repo" >"$out/validate.txt" 2>&1
cat "$out/validate.txt"
if [ "$validate_status" -ne 0 ]; then
  {
    echo "## centossrv: the fleet does not compile"
    echo
    echo '```'
    cat "$out/validate.txt"
    echo '```'
  } | summary
  output exit-code 1
  output changes unknown
  exit 1
fi

# 2. Plan head against base, in every format.
plan_args=(plan "$repo" --head "$head" --forge "$forge" --detailed-exitcode)
if [ -n "$base" ]; then plan_args+=(--base "$base"); fi
if [ -n "${CENTOSSRV_PR:-}" ]; then plan_args+=(--pr "$CENTOSSRV_PR"); fi
if [ -n "${CENTOSSRV_LINK:-}" ]; then plan_args+=(--link "$CENTOSSRV_LINK"); fi

"$bin" "${plan_args[@]}" --format markdown >"$out/plan.md"
plan_status=$?
"$bin" "${plan_args[@]}" --format json >"$out/plan.json"
"$bin" "${plan_args[@]}" --format text --color never >"$out/plan.txt"
cat "$out/plan.txt"
summary <"$out/plan.md"

case "$plan_status" in
  0) output changes false; output exit-code 0; exit 0 ;;
  2)
    output changes true
    if [ "${CENTOSSRV_FAIL_ON_CHANGES:-false}" = "true" ]; then
      output exit-code 2
      exit 2
    fi
    output exit-code 0
    exit 0
    ;;
  *) output changes unknown; output exit-code 1; exit 1 ;;
esac
