#!/bin/bash
# Profile one 1 GiB download from a libtorrent seeder on loopback (issue 7 case 1), outside the benchmark harness.
#
#   benchmarks/profile_download.sh WORKDIR MODE [extra shoal get arguments]
#
# WORKDIR is a `shoal bench download --workdir WORKDIR` folder (its content/ holds the 1 GiB file and torrent; run
# the benchmark once to make them). MODE:
#   time     shoal get under /usr/bin/time (wall, user, sys, peak RSS)
#   lt       libtorrent downloading instead, for a paired run: its seconds from adding the torrent to complete, and its
#            CPU (user, sys)
#   perf     shoal get under `perf record -F 999 -g` -> WORKDIR/perf.data
#   disk     shoal get with benchmarks/disk_stage_probe first on PYTHONPATH: at its exit, how long pieces waited for a
#            disk thread, their hash and write times, and how long reading was paused (a full write queue)
#   spy      shoal get under `py-spy record --gil` (only the thread holding the GIL) -> WORKDIR/spy.txt (raw);
#            SPY_RATE sets its samples per second (default 250), SPY_FLAGS replaces `--gil` (`--threads`: every
#            thread, each stack under its thread's name, e.g. to see the event-loop thread alone)
# SHOAL_ENTRY replaces "-m shoal" (e.g. a wrapper script that patches a setting first). The libtorrent seeder's own
# CPU is printed after each run. Run it under `flock /tmp/shoal-heavy.lock` on a
# shared machine, and alternate `time` and `lt` runs: a lone figure means little there.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(realpath "$1")
mode=$2
shift 2
content=$work/content
torrent=$(ls "$content"/bench-1073741824-*.torrent | head -1)
out=$work/profile-out
py=.venv/bin/python
rm -rf "$out"
mkdir -p "$out"
unset PYTHONDONTWRITEBYTECODE # as installed: bytecode caches written once, not recompiled every run

$py tests/interop/harness/lt_runner.py seed "$torrent" "$content" --listen 127.0.0.1 --timeout 600 >"$work/seed.log" 2>&1 &
seeder=$!
trap 'kill $seeder 2>/dev/null || true; wait $seeder 2>/dev/null || true' EXIT
for _ in $(seq 150); do grep -q listening "$work/seed.log" && break; sleep 0.2; done
port=$(grep -o '"port": *[0-9]*' "$work/seed.log" | head -1 | grep -o '[0-9]*$')
sleep 1
get=(${SHOAL_ENTRY:--m shoal} get "$torrent" -o "$out" --no-seed --quiet --bind 127.0.0.1 --port 0 --peer "127.0.0.1:$port" "$@")
case $mode in
time) /usr/bin/time -f "shoal: %e s wall, %U user + %S sys CPU-s, peak RSS %M KiB" $py "${get[@]}" ;;
lt) $py tests/interop/harness/lt_runner.py get "$torrent" "$out" --listen 127.0.0.1 --peer "127.0.0.1:$port" \
    --timeout 300 | grep -o '"seconds": [0-9.]*\|"cpu_user": [0-9.]*\|"cpu_sys": [0-9.]*' | tr "\n" " "; echo ;;
perf) perf record -F 999 -g -o "$work/perf.data" -- $py "${get[@]}" ;;
disk) PYTHONPATH=benchmarks/disk_stage_probe:${PYTHONPATH:-src} $py "${get[@]}" ;;
spy) .venv/bin/py-spy record ${SPY_FLAGS:---gil} -r ${SPY_RATE:-250} -f raw -o "$work/spy.txt" -- $py "${get[@]}" ;;
*) echo "unknown mode $mode (time, lt, perf, spy, disk)" >&2; exit 2 ;;
esac
kill $seeder 2>/dev/null || true
wait $seeder 2>/dev/null || true
trap - EXIT
grep '"exit"' "$work/seed.log" | $py -c '
import json, sys
d = json.loads(sys.stdin.read())
print("seeder: %.2f CPU-s" % (d["cpu_user"] + d["cpu_sys"]))' || true
