#!/usr/bin/env bash
# Idle cost of `centossrv-agent watch` on 1,000 managed files: builds the release binary,
# applies 1,000 files (10 directories x 100) to a sandbox root, starts `watch`, waits for it
# to be ready, then samples /proc/PID/status (VmRSS, VmHWM, context switches) and
# /proc/PID/stat (utime + stime) over SECONDS (default 60) and prints the figures. Finally
# edits one managed file to show the watch was live, and stops it with SIGTERM.
#
#   bench/watch_idle.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_IDLE="${1:-60}"
FILES_PER_DIR=100
DIRS=10

cargo build --release -q -p agent
BIN="$PWD/target/release/centossrv-agent"
WORK="$(mktemp -d)"
WATCH_PID=""
cleanup() {
    if [ -n "$WATCH_PID" ] && kill -0 "$WATCH_PID" 2>/dev/null; then
        kill -TERM "$WATCH_PID" 2>/dev/null || true
        wait "$WATCH_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

ROOT="$WORK/root"
mkdir -p "$ROOT/etc"
echo "root:x:$(id -u):$(id -g):root:/root:/bin/bash" >"$ROOT/etc/passwd"
echo "root:x:$(id -g):" >"$ROOT/etc/group"

# The desired state: /srv/bench, its 10 directories, 100 files in each (owner root).
{
    printf '{"format":1,"node":"bench-01","resources":['
    origin='"origin":{"role":"bench","file":"roles/bench.yaml","line":1}'
    printf '{"id":"directory:/srv","spec":{"type":"directory","path":"/srv","ensure":"present","mode":"0755"},%s}' "$origin"
    printf ',{"id":"directory:/srv/bench","spec":{"type":"directory","path":"/srv/bench","ensure":"present","mode":"0755"},%s}' "$origin"
    for d in $(seq 0 $((DIRS - 1))); do
        printf ',{"id":"directory:/srv/bench/d%s","spec":{"type":"directory","path":"/srv/bench/d%s","ensure":"present","mode":"0755","owner":"root","group":"root"},%s}' "$d" "$d" "$origin"
        for f in $(seq 0 $((FILES_PER_DIR - 1))); do
            content="managed file $d/$f\n"
            sum="$(printf "$content" | sha256sum | cut -d' ' -f1)"
            printf ',{"id":"file:/srv/bench/d%s/f%s.conf","spec":{"type":"file","path":"/srv/bench/d%s/f%s.conf","ensure":"present","content":"%s","sha256":"sha256:%s","mode":"0644","owner":"root","group":"root"},%s}' \
                "$d" "$f" "$d" "$f" "$content" "$sum" "$origin"
        done
    done
    printf ']}\n'
} >"$WORK/desired.json"

"$BIN" apply "$WORK/desired.json" --root "$ROOT" --state-dir "$WORK/state" | head -1

"$BIN" watch "$WORK/desired.json" --root "$ROOT" --state-dir "$WORK/state" --format json \
    >"$WORK/events.jsonl" &
WATCH_PID=$!
for _ in $(seq 1 300); do
    grep -q '"event":"ready"' "$WORK/events.jsonl" 2>/dev/null && break
    sleep 0.1
done
grep '"event":"ready"' "$WORK/events.jsonl" || { echo "watch did not get ready" >&2; exit 1; }
# Let the startup's allocations settle.
sleep 2

TCK="$(getconf CLK_TCK)"
cpu_ticks() { awk '{print $14 + $15}' "/proc/$WATCH_PID/stat"; }
status() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$WATCH_PID/status"; }
switches() { echo $(($(status voluntary_ctxt_switches) + $(status nonvoluntary_ctxt_switches))); }

cpu0="$(cpu_ticks)"
sw0="$(switches)"
t0="$(date +%s.%N)"
echo "sampling for ${SECONDS_IDLE}s..."
sleep "$SECONDS_IDLE"
cpu1="$(cpu_ticks)"
sw1="$(switches)"
t1="$(date +%s.%N)"

echo "managed resources:   $((DIRS * FILES_PER_DIR)) files, $((DIRS + 2)) directories"
echo "threads:             $(status Threads)"
echo "VmRSS:               $(status VmRSS) kB"
echo "VmHWM (peak RSS):    $(status VmHWM) kB"
echo "CPU (utime+stime):   $((cpu1 - cpu0)) ticks of 1/${TCK} s over $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"
echo "context switches:    $((sw1 - sw0))"

# The watch was live all along: one edit is reported.
echo "edited" >"$ROOT/srv/bench/d3/f42.conf"
for _ in $(seq 1 100); do
    grep -q '"event":"drift"' "$WORK/events.jsonl" && break
    sleep 0.1
done
echo "after one edit:      $(grep -c '"event":"drift"' "$WORK/events.jsonl") drift event(s): $(grep '"event":"drift"' "$WORK/events.jsonl" | head -1 | cut -c1-120)..."
