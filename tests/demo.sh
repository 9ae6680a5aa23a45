#!/usr/bin/env bash
# `make demo`: a 3-node pagemesh cluster on loopback, formed through the
# embedded coordinator, does real work: a
# prime sieve over one shared 64 MiB region (each node sieves a third, then
# counts primes in its neighbour's third, so pages move between nodes),
# plus a counter that all nodes increment at once. Prints a per-node table
# and checks both answers; exits non-zero when anything is wrong.
set -uo pipefail
B=${PM_BUILD:-build}
# The coordinator's "listening on" line (its URL) is an info line.
export PM_LOG_LEVEL=${PM_LOG_LEVEL:-info}
NODES=3
LIMIT=${PM_DEMO_LIMIT:-50000000}
dir=$(mktemp -d /tmp/pm-demo-XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
	wait 2>/dev/null
	rm -rf "$dir"
}
trap cleanup EXIT

# The embedded coordinator, on a free port it picks and prints.
"$B/pagemesh" coordinator --listen 127.0.0.1:0 > "$dir/coord.out" \
	2> "$dir/coord.log" &
pids+=("$!")
url=""
for _ in $(seq 1 100); do
	url=$(sed -n 's/.*listening on \(http:[^ ]*\).*/\1/p' "$dir/coord.out")
	[ -n "$url" ] && break
	if ! kill -0 "${pids[0]}" 2>/dev/null; then
		echo "demo: the coordinator did not start:"; cat "$dir/coord.log"
		exit 1
	fi
	sleep 0.1
done
[ -n "$url" ] || { echo "demo: the coordinator did not start"; exit 1; }

# Nodes name only the coordinator: they listen on any free port and
# find each other through it.
for i in $(seq 0 $((NODES - 1))); do
	cat > "$dir/node$i.cfg" <<CFG
node = { id = $i; };
cluster = { name = "demo"; nodes = $NODES; memory = "64M"; };
transports = { order = [ "rdma", "io_uring-tcp", "tcp" ]; dir = "$B/plugins";
  tcp = { listen = "127.0.0.1:0"; };
  io_uring-tcp = { listen = "127.0.0.1:0"; };
  rdma = { listen = "127.0.0.1:0"; }; };
coordinator = { url = "$url"; };
pager = { threads = 2; };
CFG
done

echo "pagemesh demo: $NODES nodes on loopback find each other through the"
echo "coordinator at $url and share a 64 MiB region; they sieve the"
echo "primes below $LIMIT in it and count them across nodes."
start=$(date +%s.%N)
for i in $(seq 0 $((NODES - 1))); do
	timeout 120 "$B/tests/demo_app" "$dir/node$i.cfg" "$LIMIT" \
		> "$dir/node$i.out" 2> "$dir/node$i.log" &
	pids+=("$!")
done
fail=0
for i in $(seq 0 $((NODES - 1))); do
	if ! wait "${pids[$((i + 1))]}"; then
		echo "node $i failed; its log:"
		sed 's/^/    /' "$dir/node$i.log"
		fail=1
	fi
done
end=$(date +%s.%N)

echo
printf '%-5s %8s %8s %8s %6s | %7s %7s | %7s %7s | %8s %8s\n' \
	node zero local remote wp sent recv inv-out inv-in p50-us p99-us
cat "$dir"/node*.out | awk '/^STATS/ {
	for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
	printf "%-5s %8s %8s %8s %6s | %7s %7s | %7s %7s | %8s %8s\n",
		v["node"], v["zero"], v["local"], v["remote"], v["wp"],
		v["sent"], v["recv"], v["inv_sent"], v["inv_recv"],
		v["p50"], v["p99"] }'
echo "(faults by how they were served: zero page, data homed here, data from"
echo " another node, write-protect upgrades; pages and invalidations moved;"
echo " fault service latency percentiles)"
echo
grep -h '^RESULT' "$dir"/node*.out | sed 's/^RESULT /  /'
awk -v s="$start" -v e="$end" 'BEGIN { printf "  wall time: %.1f s\n", e - s }'
if grep -qh 'WRONG' "$dir"/node*.out || [ $fail != 0 ] ||
   ! grep -qh '^RESULT primes' "$dir"/node*.out; then
	echo "demo: FAILED"
	exit 1
fi
echo "demo: all answers exact"
