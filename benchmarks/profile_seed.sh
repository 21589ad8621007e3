#!/bin/bash
# Profile `shoal seed` while one libtorrent downloader fetches 1 GiB from it (issue 7 case 2), outside the harness.
#
#   benchmarks/profile_seed.sh WORKDIR [MODE]
#
# WORKDIR is a `shoal bench download --workdir WORKDIR` folder (its content/ holds the 1 GiB file and torrent).
# Prints the downloader's seconds and CPU and the seeder's CPU while it served (read from /proc before the
# downloader starts and after it ends: the start-up check is not in it). MODE:
#   time     (default) just that
#   spy      the seeder under `py-spy record --gil` meanwhile -> WORKDIR/seed-spy.txt (raw)
#   perf     the seeder under `perf record -F 999 -g` meanwhile -> WORKDIR/seed.perf
# Set PYTHONPATH to a worktree's src to profile another commit. Run it under `flock /tmp/shoal-heavy.lock` on a
# shared machine and alternate the sides of an A/B: a lone figure means little there.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(realpath "$1")
mode=${2:-time}
content=$work/content
torrent=$(ls "$content"/bench-1073741824-*.torrent | head -1)
data=$content/bench-1073741824.bin
out=$work/profile-seed-out
py=.venv/bin/python
rm -rf "$out"
mkdir -p "$out"
unset PYTHONDONTWRITEBYTECODE # as installed: bytecode caches written once, not recompiled every run

$py -m shoal seed "$torrent" "$data" --bind 127.0.0.1 --port 0 >"$work/seed-shoal.log" 2>&1 &
seeder=$!
profiler=
trap 'kill $seeder $profiler 2>/dev/null || true; wait $seeder 2>/dev/null || true' EXIT
for _ in $(seq 600); do grep -q "seeding on port" "$work/seed-shoal.log" && break; sleep 0.1; done
port=$(grep -o "seeding on port [0-9]*" "$work/seed-shoal.log" | grep -o "[0-9]*$")
case $mode in
time) ;;
spy) .venv/bin/py-spy record --gil -r 250 -f raw -p $seeder -o "$work/seed-spy.txt" >/dev/null 2>&1 & profiler=$! ;;
perf) perf record -F 999 -g -p $seeder -o "$work/seed.perf" >/dev/null 2>&1 & profiler=$! ;;
*) echo "unknown mode $mode (time, spy, perf)" >&2; exit 2 ;;
esac
[ -n "$profiler" ] && sleep 0.5
ticks=$(getconf CLK_TCK)
before=$(awk '{print $14 + $15}' /proc/$seeder/stat)
$py tests/interop/harness/lt_runner.py get "$torrent" "$out" --listen 127.0.0.1 --peer "127.0.0.1:$port" \
    --timeout 300 | grep -o '"seconds": [0-9.]*\|"cpu_user": [0-9.]*\|"cpu_sys": [0-9.]*' | tr "\n" " "
after=$(awk '{print $14 + $15}' /proc/$seeder/stat)
echo "| seeder while serving: $(awk "BEGIN {printf \"%.2f\", ($after - $before) / $ticks}") CPU-s"
if [ -n "$profiler" ]; then kill -INT $profiler; wait $profiler || true; fi
kill $seeder
wait $seeder 2>/dev/null || true
trap - EXIT
