#!/bin/sh
# `pagemesh node` as an operator meets it: each configuration error exits
# 78 naming FILE:LINE, a bind that fails is a runtime error (1) that says
# why, SIGINT and SIGTERM end start-up within a second (exit 0), and -v /
# -vv / PM_LOG_LEVEL set what is logged, and `pagemesh stats` shows each
# node's peers as an aligned table. Real processes on loopback; a node
# waiting at start-up is waited for by its own log line, not a sleep.
# Env: PM_BUILD (the build folder).
set -u
B=${PM_BUILD:-build}
PM=$(cd "$B" && pwd)/pagemesh
T=$(mktemp -d /tmp/pm-cli-XXXXXX)
pass=0
fail=0
pids=
cleanup() {
	for p in $pids; do kill -9 "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT INT TERM

ok() { pass=$((pass + 1)); echo "PASS $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; sed 's/^/    /' "$T/out"; }

# cfg NAME EXTRA-LINES: a one-node config on loopback plus EXTRA-LINES.
cfg() {
	{
		echo 'node = { id = 0; };'
		echo 'cluster = { name = "cli"; nodes = 1; memory = "1M"; };'
		echo 'transports = { order = [ "tcp" ];'
		echo '  tcp = { listen = "127.0.0.1:0"; }; };'
		printf '%s\n' "$2"
	} > "$T/$1.cfg"
}

# refused NAME WANT-RC WANT-TEXT EXTRA-LINES [SED]: node exits WANT-RC,
# saying WANT-TEXT (a fixed string) on stderr; SED edits the config first.
refused() {
	cfg "$1" "$4"
	[ -z "${5:-}" ] || sed -i "$5" "$T/$1.cfg"
	(cd "$T" && timeout 20 "$PM" node -c "$1.cfg") >"$T/out" 2>&1
	rc=$?
	if [ $rc = "$2" ] && grep -qF -- "$3" "$T/out"; then
		ok "$1: exit $2, '$3'"
	else
		echo "    (exit $rc)" >> "$T/out"
		bad "$1: exit $2, '$3'"
	fi
}

refused typo 78 "typo.cfg:5: unknown key 'pager.threds' (did you mean 'pager.threads'?)" \
	'pager = { threds = 4; };'
refused metrics-port 78 "metrics-port.cfg:5: metrics.listen: " \
	'metrics = { listen = "127.0.0.1:99999"; };'
refused metrics-host 78 "metrics-host.cfg:5: metrics.listen: " \
	'metrics = { listen = "no such host:1"; };'
refused plugin-option 78 "plugin-option.cfg:4: transports.tcp: the tcp transport refuses its settings" \
	'' 's/127.0.0.1:0/127.0.0.1:x/'
refused local-limit 78 "local-limit.cfg:5: pager.local_limit: 2 pages is too small" \
	'pager = { local_limit = "8K"; };'
refused key-proc 78 "key-proc.cfg:5: security.key_file /proc/self/environ: " \
	'security = { key_file = "/proc/self/environ"; };'
(cd "$T" && "$PM" node -c "$T") >"$T/out" 2>&1
rc=$?
if [ $rc = 78 ] && grep -qF "$T: not a config file (a folder)" "$T/out"; then
	ok "-c FOLDER: exit 78, 'not a config file'"
else
	bad "-c FOLDER: exit 78, 'not a config file' (exit $rc)"
fi

# A metrics port already taken: the bind fails at start-up, a runtime error.
python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen()
print(s.getsockname()[1], flush=True); sys.stdin.read()' \
	> "$T/port" < /dev/zero &
pids="$pids $!"
for i in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.05; done
refused metrics-in-use 1 "cannot listen on 127.0.0.1:$(cat "$T/port"): Address already in use" \
	"metrics = { listen = \"127.0.0.1:$(cat "$T/port")\"; };"

# Two nodes that disagree on cluster.memory: the one whose handshake is
# refused names its cluster line and exits 78 (the other may then time out).
p1=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
p2=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
for i in 0 1; do
	{
		echo "node = { id = $i; };"
		echo "cluster = { name = \"cli\"; nodes = 2; memory = \"${i}M\"; startup_timeout_ms = 3000; };"
		echo 'transports = { order = [ "tcp" ];'
		[ $i = 0 ] && echo "  tcp = { listen = \"127.0.0.1:$p1\"; }; };" ||
			echo "  tcp = { listen = \"127.0.0.1:$p2\"; }; };"
		[ $i = 0 ] && echo "peers = ( { id = 1; tcp = \"127.0.0.1:$p2\"; } );" ||
			echo "peers = ( { id = 0; tcp = \"127.0.0.1:$p1\"; } );"
	} > "$T/geo$i.cfg"
done
sed -i 's/"0M"/"1M"/' "$T/geo0.cfg"
sed -i 's/"1M"/"2M"/' "$T/geo1.cfg"
(cd "$T" && timeout 20 "$PM" node -c geo0.cfg) > "$T/geo0.out" 2>&1 &
g0=$!
(cd "$T" && timeout 20 "$PM" node -c geo1.cfg) > "$T/geo1.out" 2>&1
r1=$?
wait $g0
r0=$?
cat "$T/geo0.out" "$T/geo1.out" > "$T/out"
if { [ $r0 = 78 ] && grep -q "^pagemesh node: geo0.cfg:2: .*member of another cluster" "$T/geo0.out"; } ||
   { [ $r1 = 78 ] && grep -q "^pagemesh node: geo1.cfg:2: .*member of another cluster" "$T/geo1.out"; }; then
	ok "cluster.memory mismatch: exit 78 naming cluster's line ($r0, $r1)"
else
	echo "    (exits $r0 and $r1)" >> "$T/out"
	bad "cluster.memory mismatch: exit 78 naming cluster's line"
fi

# A node of two whose peer never comes: it waits at start-up (30 s).
cfg waiting 'peers = ( { id = 1; tcp = "127.0.0.1:1"; } );'
sed -i 's/nodes = 1/nodes = 2/' "$T/waiting.cfg"

# start_waiting ARGS...: starts node, returns once it logged WAIT_FOR.
start_waiting() {
	: > "$T/out"
	(cd "$T" && exec "$PM" "$@" node -c waiting.cfg) >"$T/out" 2>&1 &
	pid=$!
	pids="$pids $pid"
	for i in $(seq 200); do
		grep -q "peers are not authenticated" "$T/out" && return 0
		sleep 0.05
	done
	return 1
}

for sig in INT TERM; do
	if ! PM_LOG_LEVEL=info start_waiting; then
		bad "SIG$sig during start-up: the node never reached start-up"
		continue
	fi
	t0=$(date +%s%N)
	kill -$sig $pid
	# wait, bounded: a node that ignores the signal is killed after 5 s.
	( sleep 5; kill -9 $pid 2>/dev/null ) & guard=$!
	wait $pid
	rc=$?
	kill $guard 2>/dev/null
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	if [ $rc = 0 ] && [ $ms -le 1000 ]; then
		ok "SIG$sig during start-up: exit 0 after $ms ms"
	else
		bad "SIG$sig during start-up: exit $rc after $ms ms (want 0 within 1000 ms)"
	fi
done

# levels ARGS: which levels a start-up logs with ARGS (and PM_LOG_LEVEL
# unset unless the caller sets it).
levels() {
	start_waiting "$@" || { echo "never started"; return; }
	kill -INT $pid
	wait $pid
	for l in error warn info debug; do
		grep -q " $l: " "$T/out" && printf '%s ' $l
	done
	echo
}
check_levels() {
	want=$1; shift
	got=$(levels "$@")
	if [ "$got" = "$want" ]; then
		ok "levels ${*:-(none)} ${PM_LOG_LEVEL:+PM_LOG_LEVEL=$PM_LOG_LEVEL}: $want"
	else
		echo "    got: $got" > "$T/out"
		bad "levels ${*:-(none)} ${PM_LOG_LEVEL:+PM_LOG_LEVEL=$PM_LOG_LEVEL}: $want"
	fi
}
unset PM_LOG_LEVEL
check_levels "warn "
check_levels "warn info " -v
check_levels "warn info debug " -vv
check_levels "warn info debug " -v -v
PM_LOG_LEVEL=debug check_levels "warn info debug "
PM_LOG_LEVEL=info check_levels "warn info debug " -vv

# `pagemesh stats`: three nodes (ports from an embedded coordinator, so
# none is guessed) and each node's peers as an aligned table of their own.
"$PM" coordinator --listen 127.0.0.1:0 > "$T/coord.out" 2>&1 &
cpid=$!
pids="$pids $cpid"
curl_url=
for i in $(seq 200); do
	curl_url=$(sed -n 's/^listening on \([^ ]*\).*/\1/p' "$T/coord.out")
	[ -n "$curl_url" ] && break
	sleep 0.05
done
spids=
for i in 0 1 2; do
	{
		echo "node = { id = $i; };"
		echo 'cluster = { name = "cli-stats"; nodes = 3; memory = "1M"; };'
		echo 'transports = { order = [ "tcp" ];'
		echo '  tcp = { listen = "127.0.0.1:0"; }; };'
		echo "coordinator = { url = \"$curl_url\"; };"
		echo 'metrics = { listen = "127.0.0.1:0"; };'
	} > "$T/stats$i.cfg"
	(cd "$T" && exec "$PM" -v node -c "stats$i.cfg") > "$T/stats$i.out" 2>&1 &
	spids="$spids $!"
	pids="$pids $!"
done
up=0
for i in $(seq 400); do
	up=$(cat "$T"/stats[012].out | grep -c " of 3 up: region")
	[ "$up" = 3 ] && break
	sleep 0.05
done
port0=$(sed -n 's/.*metrics on .*(port \([0-9]*\)).*/\1/p' "$T/stats0.out")
port1=$(sed -n 's/.*metrics on .*(port \([0-9]*\)).*/\1/p' "$T/stats1.out")
if [ "$up" != 3 ] || [ -z "$port0" ] || [ -z "$port1" ]; then
	cat "$T"/coord.out "$T"/stats[012].out > "$T/out"
	bad "stats: a cluster of 3 with metrics did not come up"
else
	timeout 20 "$PM" stats -i 0 --node "127.0.0.1:$port0" \
		--node "127.0.0.1:$port1" > "$T/out" 2>&1
	rc=$?
	# check_peers TITLE PEER-A PEER-B: the section under TITLE is a header
	# and one row per peer, every line as long as the header, each text
	# column starting (counters ending) where its header does.
	check_peers() {
		awk -v title="$1" -v a="$2" -v b="$3" '
		$0 == title { on = 1; next }
		on == 1 { hdr = $0; on = 2
			n = 0; s = hdr
			while (match(s, /[^ ]+/)) {
				n++; st[n] = RSTART + off; en[n] = RSTART + RLENGTH - 1 + off
				name[n] = substr(s, RSTART, RLENGTH)
				off += RSTART + RLENGTH - 1; s = substr(s, RSTART + RLENGTH)
			}
			next }
		on == 2 && $0 == "" { on = 3 }
		on == 2 { rows++
			if (length($0) != length(hdr)) { print "length: " $0; err++ }
			for (k = 1; k <= n; k++) {
				if (k <= 4) { p = st[k]; c = substr($0, p, 1); q = p > 1 ? substr($0, p - 1, 1) : "" }
				else { p = en[k]; c = substr($0, p, 1); q = substr($0, p + 1, 1) }
				if (c == " " || (q != "" && q != " ")) { print "column " name[k] ": " $0; err++ }
			}
			if ($1 != a && $1 != b) { print "peer: " $0; err++ }
			if ($2 != "yes" || $3 != "tcp" || $4 !~ /^127\.0\.0\.1:[0-9]+$/) { print "cells: " $0; err++ }
			if ($0 !~ / B$| [KMG]iB$/) { print "bytes: " $0; err++ }
		}
		END {
			if (hdr !~ /^node  up   transport  endpoint +sent  received$/) { print "header: " hdr; err++ }
			if (rows != 2) { print "rows: " rows; err++ }
			exit err ? 1 : 0
		}' "$T/out"
	}
	if [ $rc = 0 ] &&
	   check_peers "peers of node 0 (127.0.0.1:$port0):" 1 2 >> "$T/out" &&
	   check_peers "peers of node 1 (127.0.0.1:$port1):" 0 2 >> "$T/out" &&
	   ! grep -q '^peer_[a-z_]*{' "$T/out"; then
		ok "stats: each node's peers in an aligned table"
	else
		echo "    (exit $rc)" >> "$T/out"
		bad "stats: each node's peers in an aligned table"
	fi
fi
for p in $spids; do kill -TERM "$p" 2>/dev/null; done
for p in $spids; do wait "$p" 2>/dev/null; done
kill -TERM "$cpid" 2>/dev/null
wait "$cpid" 2>/dev/null

echo "cli_test: $pass passed, $fail failed"
[ "$fail" = 0 ]
