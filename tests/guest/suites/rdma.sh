# Guest suite: the RDMA transport over soft-RoCE (rdma_rxe on a dummy
# netdev), run inside the QEMU guest of tests/guest/run.sh.
# Prints `RESULT <test> PASS|FAIL|SKIP <reason>` lines.
B=$PM_ROOT/$PM_BUILD
IP=10.77.0.1
IP2=10.77.0.2
LOGDIR=/tmp/rdma
mkdir -p $LOGDIR

result() {
	echo "RESULT $1 $2 $3"
}

# Run one program, relay its output, and turn its exit status into a
# RESULT line (77 = skipped, the program printed why).
run_test() {
	name=$1
	shift
	"$@" > $LOGDIR/$name.log 2>&1
	rc=$?
	sed "s/^/[$name] /" $LOGDIR/$name.log
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
	run_test rdma-plugin env PM_RDMA_REQUIRE=1 PM_RDMA_LISTEN=$IP:0 PM_RDMA_LISTEN2=$IP2:0 \
		$B/tests/rdma_test $B/plugins/rdma.so
else
	result rdma-plugin SKIP "$PM_BUILD/tests/rdma_test not built"
fi

if [ -x $B/tests/conformance ]; then
	run_test rdma-conformance env PM_CONFORMANCE_LISTEN=$IP:0 \
		$B/tests/conformance $B/plugins/rdma.so
else
	result rdma-conformance SKIP "$PM_BUILD/tests/conformance not built"
fi

# Kernel-side complaints of the soft-RoCE driver, for diagnosis.
dmesg | grep -iE 'rxe|rdma|infiniband' | tail -n 20 | sed 's/^/[dmesg] /'

# --- two pagemesh nodes sharing a region over RDMA ---------------------------
if [ -x $B/tests/rdma_pager_test ]; then
	run_test rdma-pager env PM_RDMA_IP=$IP PM_RDMA_IP2=$IP2 \
		$B/tests/rdma_pager_test $B
else
	result rdma-pager SKIP "2-node pager test over RDMA not built ($PM_BUILD/tests/rdma_pager_test: needs the pager, core/node.c)"
fi
exit 0
