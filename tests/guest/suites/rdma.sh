# Guest suite: the RDMA transport over soft-RoCE (rdma_rxe on a dummy
# netdev), run inside the QEMU guest of tests/guest/run.sh.
# Prints `RESULT <test> PASS|FAIL|SKIP <reason>` lines.
B=$PM_ROOT/$PM_BUILD
# The checks read info lines; pagemesh alone prints warnings and errors.
export PM_LOG_LEVEL=${PM_LOG_LEVEL:-info}
IP=10.77.0.1
IP2=10.77.0.2
LOGDIR=/tmp/rdma
mkdir -p $LOGDIR

. "$PM_ROOT/tests/guest/watchdog.sh"

# Seconds each program may take (ASan builds included: under TCG they run
# 2-4 times slower) before the watchdog shows its threads and kills it.
# rdma.timeout is larger than their sum.
WD_PLUGIN=120
WD_CONFORMANCE=180
WD_PAGER=120

# cmocka catches a signal in any thread (a plugin's too) but only keeps
# its message, and from a thread that is not the test's it ends in
# exit(255) with nothing printed (seen under ASan). With CMOCKA_TEST_ABORT
# it prints the message and aborts, and an ASan build shows the stack; the
# price is that a failure ends the program instead of going on to the
# next test. Sanitizer reports come with stacks too.
export ASAN_OPTIONS="handle_abort=1:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:${UBSAN_OPTIONS:-}"
export CMOCKA_TEST_ABORT=1

result() {
	echo "RESULT $1 $2 $3"
}

# Run one program under a watchdog of $2 seconds, relay its output, and
# turn its exit status into a RESULT line (77 = skipped, the program
# printed why).
run_test() {
	local name=$1 limit=$2 pid wd
	shift 2
	rm -f $LOGDIR/$name.watchdog
	"$@" > $LOGDIR/$name.log 2>&1 &
	pid=$!
	watchdog $limit $LOGDIR/$name.watchdog "$pid:$name" \
		> $LOGDIR/$name.wd 2>&1 &
	wd=$!
	wait $pid
	rc=$?
	watch_stop $wd
	# awk ends an unfinished last line (an abort's message has no
	# newline) so the RESULT line below starts a line of its own.
	awk -v p="[$name] " '{ print p $0 }' $LOGDIR/$name.log $LOGDIR/$name.wd
	if [ -f $LOGDIR/$name.watchdog ]; then
		result $name FAIL "not finished within $limit s (where it was: above)"
		return
	fi
	case $rc in
	0) result $name PASS "exit 0" ;;
	77) result $name SKIP "$(grep -i skip $LOGDIR/$name.log | tail -n1)" ;;
	*) result $name FAIL "exit status $rc" ;;
	esac
}

# --- soft-RoCE device --------------------------------------------------------
# busybox runs its own ip applet ahead of $PATH: call iproute2's by path.
IPCMD=/usr/bin/ip
setup() {
	$IPCMD link add dummy0 type dummy || return 1
	$IPCMD addr add $IP/24 dev dummy0 || return 1
	$IPCMD addr add $IP2/24 dev dummy0 || return 1
	$IPCMD link set dummy0 up || return 1
	rdma link add rxe0 type rxe netdev dummy0 || return 1
	[ -e /dev/infiniband/rdma_cm ] || return 1
}
if ! setup > $LOGDIR/setup.log 2>&1; then
	cat $LOGDIR/setup.log
	dmesg | tail -n 20
	result rdma-setup FAIL "could not create rxe0 on dummy0 (log above)"
	exit 0
fi
result rdma-setup PASS "rxe0 on dummy0 $IP"
ibv_devinfo -d rxe0 2>&1 | grep -E 'hca_id|state|link_layer' | sed 's/^/[devinfo] /'

# --- the plugin's own tests, then the shared conformance suite --------------
if [ -x $B/tests/rdma_test ]; then
	run_test rdma-plugin $WD_PLUGIN env PM_RDMA_REQUIRE=1 PM_RDMA_LISTEN=$IP:0 \
		PM_RDMA_LISTEN2=$IP2:0 $B/tests/rdma_test $B/plugins/rdma.so
else
	result rdma-plugin SKIP "$PM_BUILD/tests/rdma_test not built"
fi

if [ -x $B/tests/conformance ]; then
	run_test rdma-conformance $WD_CONFORMANCE \
		env PM_CONFORMANCE_LISTEN=$IP:0 \
		$B/tests/conformance $B/plugins/rdma.so
else
	result rdma-conformance SKIP "$PM_BUILD/tests/conformance not built"
fi

# Kernel-side complaints of the soft-RoCE driver, for diagnosis.
dmesg | grep -iE 'rxe|rdma|infiniband' | tail -n 20 | sed 's/^/[dmesg] /'

# --- two pagemesh nodes sharing a region over RDMA ---------------------------
# Each node is tests/coh_worker (a workload through the public API that
# checks its own results) with rdma as its only transport, so nothing can
# fall back to TCP; the nodes listen on two addresses of dummy0.
pager_test() {
	W=$B/tests/coh_worker
	if [ ! -x $W ]; then
		result rdma-pager SKIP "$PM_BUILD/tests/coh_worker not built"
		return
	fi
	# Not loopback: the nodes need a cluster key (owner-only).
	head -c 32 /dev/urandom > $LOGDIR/cluster.key
	chmod 600 $LOGDIR/cluster.key
	for i in 0 1; do
		o=$((1 - i))
		eval "me=\$IP$i other=\$IP$o"
		cat > $LOGDIR/node$i.cfg <<EOF
node = { id = $i; };
cluster = { name = "rdma-pair"; nodes = 2; memory = "4M";
            startup_timeout_ms = 60000; };
transports = { order = [ "rdma" ]; dir = "$B/plugins";
               rdma = { listen = "$me:$((7720 + i))"; }; };
peers = ( { id = $o; rdma = "$other:$((7720 + o))"; } );
pager = { threads = 2; timeout_ms = 30000; };
security = { key_file = "$LOGDIR/cluster.key"; };
EOF
	done
	rm -f $LOGDIR/pager.watchdog
	$W $LOGDIR/node0.cfg all 100 > $LOGDIR/node0.log 2>&1 &
	p0=$!
	$W $LOGDIR/node1.cfg all 100 > $LOGDIR/node1.log 2>&1 &
	p1=$!
	watchdog $WD_PAGER $LOGDIR/pager.watchdog "$p0:node0" "$p1:node1" \
		> $LOGDIR/pager.wd 2>&1 &
	wd=$!
	wait $p0
	rc0=$?
	wait $p1
	rc1=$?
	watch_stop $wd
	awk '{ print "[node0] " $0 }' $LOGDIR/node0.log | tail -n 30
	awk '{ print "[node1] " $0 }' $LOGDIR/node1.log | tail -n 30
	cat $LOGDIR/pager.wd
	if [ -f $LOGDIR/pager.watchdog ]; then
		result rdma-pager FAIL "not finished within $WD_PAGER s (where it was: above)"
	elif [ $rc0 != 0 ] || [ $rc1 != 0 ]; then
		result rdma-pager FAIL "coh_worker exit status $rc0 and $rc1"
	elif ! grep -q "transport rdma: listening on" $LOGDIR/node0.log ||
	     ! grep -q "transport rdma: listening on" $LOGDIR/node1.log; then
		result rdma-pager FAIL "the nodes did not say they listened on rdma"
	else
		result rdma-pager PASS "2 nodes, workloads exact over rdma"
	fi
}
IP0=$IP
IP1=$IP2
pager_test
exit 0
