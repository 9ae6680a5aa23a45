#!/usr/bin/env bash
# `make demo`: a 3-node pagemesh cluster on loopback does real work: a
# prime sieve over one shared 64 MiB region (each node sieves a third, then
# counts primes in its neighbour's third, so pages move between nodes),
# plus a counter that all nodes increment at once. Prints a per-node table
# and checks both answers; exits non-zero when anything is wrong.
set -uo pipefail
B=${PM_BUILD:-build}
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

# Free loopback ports, one per node.
ports=()
p=$((20000 + RANDOM % 20000))
while [ ${#ports[@]} -lt $NODES ]; do
	if ! ss -Hltn "sport = :$p" 2>/dev/null | grep -q .; then
		ports+=("$p")
	fi
	p=$((p + 1))
done

for i in $(seq 0 $((NODES - 1))); do
	peers=""
	for j in $(seq 0 $((NODES - 1))); do
		[ "$j" = "$i" ] && continue
		peers="$peers${peers:+, }{ id = $j; tcp = \"127.0.0.1:${ports[$j]}\"; }"
	done
	cat > "$dir/node$i.cfg" <<CFG
node = { id = $i; };
cluster = { name = "demo"; nodes = $NODES; memory = "64M"; };
transports = { order = [ "rdma", "io_uring-tcp", "tcp" ]; dir = "$B/plugins";
  tcp = { listen = "127.0.0.1:${ports[$i]}"; }; };
peers = ( $peers );
pager = { threads = 2; };
CFG
done

echo "pagemesh demo: $NODES nodes on loopback share a 64 MiB region;"
echo "they sieve the primes below $LIMIT in it and count them across nodes."
start=$(date +%s.%N)
for i in $(seq 0 $((NODES - 1))); do
	timeout 120 "$B/tests/demo_app" "$dir/node$i.cfg" "$LIMIT" \
		> "$dir/node$i.out" 2> "$dir/node$i.log" &
	pids+=("$!")
done
fail=0
for i in $(seq 0 $((NODES - 1))); do
	if ! wait "${pids[$i]}"; then
		echo "node $i failed; its log:"
		sed 's/^/    /' "$dir/node$i.log"
		fail=1
	fi
done
pids=()
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
