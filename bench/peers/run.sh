#!/usr/bin/env bash
# Side-by-side file-workload benchmark of centossrv-agent and the peers (CFEngine, Puppet,
# Salt, pyinfra, Ansible) with the shared harness in ../shared/bench-peers (or
# $CMBENCH_HARNESS). Builds the agent in release mode, then runs the harness with this
# directory as an extra adapter directory. Extra arguments go to the harness's run.py:
#
#   bench/peers/run.sh                                   # every tool, N=100 and N=1000, 3 runs
#   bench/peers/run.sh --tools centossrv,cfengine --n 1000 --runs 5
#
# The tools must be installed first: $CMBENCH_HARNESS/setup.sh (as root).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workspace=$(cd "$here/../.." && pwd)
harness=${CMBENCH_HARNESS:-/work/shared/bench-peers}
(cd "$workspace" && cargo build --release -p agent)
default_tools=centossrv,cfengine,puppet,salt,pyinfra,ansible
case " $* " in
  *" --tools "*) exec "$harness/run.py" --adapter-dir "$here" "$@" ;;
  *) exec "$harness/run.py" --adapter-dir "$here" --tools "$default_tools" "$@" ;;
esac
