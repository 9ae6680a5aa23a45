#!/bin/sh
# SPDX-License-Identifier: MIT
# Start-up and stop of one node against the size of its region: the time
# from exec to "up" and its RSS then, and the time SIGTERM takes to end it,
# for 1 GiB, 64 GiB and 1 TiB, each run RUNS times, interleaved, with
# 1 GiB as the same-run baseline. Per-page state is allocated untouched,
# so neither should grow with the region (goal: 1 TiB up in under 1 s,
# under 64 MiB RSS).
# usage: bench/startup.sh BUILD_DIR [RUNS]
set -eu
B=${1:-build}
RUNS=${2:-5}
DIR=$B/bench/startup
mkdir -p "$DIR"
PORT=$((20000 + $$ % 20000))

now_ms() { date +%s%3N; }

one() {	# size -> "up_ms rss_kib stop_ms"
	cfg=$DIR/$1.cfg log=$DIR/$1.log
	cat > "$cfg" <<EOF
node       = { id = 0; };
cluster    = { name = "startup"; nodes = 1; memory = "$1"; };
transports = { order = [ "tcp" ]; dir = "$B/plugins";
               tcp = { listen = "127.0.0.1:$PORT"; }; };
EOF
	t0=$(now_ms)
	PM_LOG_LEVEL=info "$B/pagemesh" node -c "$cfg" > "$log" 2>&1 &
	pid=$!
	until grep -q " up: " "$log"; do
		kill -0 $pid 2>/dev/null || { cat "$log" >&2; exit 1; }
		sleep 0.01
	done
	t1=$(now_ms)
	rss=$(awk '/^VmRSS/ { print $2 }' /proc/$pid/status)
	kill -TERM $pid
	wait $pid || true
	t2=$(now_ms)
	echo "$((t1 - t0)) $rss $((t2 - t1))"
}

stat_of() {	# file column -> "median max"
	sort -n -k"$2" "$1" | awk -v c="$2" '{ v[NR] = $c }
		END { print v[int((NR + 1) / 2)], v[NR] }'
}

SIZES="1G 64G 1T"
for s in $SIZES; do : > "$DIR/$s.runs"; done
for r in $(seq 1 "$RUNS"); do
	for s in $SIZES; do one "$s" >> "$DIR/$s.runs"; done
done

echo "start-up of one node, $RUNS runs each (median / max; max is the p99 of so few):"
printf '%-6s %18s %22s %18s %10s\n' region "up (ms)" "RSS when up (MiB)" "stop (ms)" "up vs 1G"
set -- $(stat_of "$DIR/1G.runs" 1)
base=$1
for s in $SIZES; do
	set -- $(stat_of "$DIR/$s.runs" 1); up="$1 / $2"; upm=$1
	set -- $(stat_of "$DIR/$s.runs" 2)
	rss="$(($1 / 1024)) / $(($2 / 1024))"; rssmax=$2
	set -- $(stat_of "$DIR/$s.runs" 3); stop="$1 / $2"
	printf '%-6s %18s %22s %18s %9sx\n' "$s" "$up" "$rss" "$stop" \
		"$(awk -v a="$upm" -v b="$base" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
	last_up=$upm last_rss=$rssmax
done
verdict=missed
[ "$last_up" -lt 1000 ] && [ "$last_rss" -lt 65536 ] && verdict=met
echo "goal: a 1 TiB region up in under 1 s with under 64 MiB RSS: ${last_up} ms, $((last_rss / 1024)) MiB: $verdict"
