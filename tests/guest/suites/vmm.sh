# Guest suite: the pagemesh VMM under real (nested) KVM. Run by
# tests/guest/run.sh inside a QEMU guest with kvm_amd loaded, as
# `sh vmm.sh` with PM_ROOT (the repo) and PM_BUILD (build folder).
#
#   vmm-kvm-device      /dev/kvm exists
#   vmm-selftest        built-in test guest on local memory
#   vmm-selftest-2node  the same on a region spread over two nodes
#   vmm-linux-2node     the Debian kernel booted by pagemesh vm on two nodes;
#                       its /init fills and verifies FILL_MIB of guest RAM
PM=$PM_ROOT/$PM_BUILD/pagemesh
PEER=$PM_ROOT/$PM_BUILD/tests/vmm_peer
FILL=$PM_ROOT/$PM_BUILD/tests/vmm_fill
PLUGINS=$PM_ROOT/$PM_BUILD/plugins
# The kernel the harness booted us with: booted once more, nested.
KERNEL=$(ls "$PM_ROOT"/build/guest/kernel/boot/vmlinuz-* 2>/dev/null | head -n1)
# Every first touch of a guest page is a userfaultfd fault, which costs
# milliseconds under TCG (256 MiB took 133 s of guest time, 128 MiB is
# the CI budget): VM_MEM is what FILL_MIB needs plus the kernel's
# own.
VM_MEM=384M
FILL_MIB=128
# The VMM's and the peer's threads share one CPU of this guest: a wake-up
# across this guest's CPUs costs far more than a context switch on one
# (measured: 8k faults in 40 s pinned, 66 s unpinned).
PIN="taskset -c 0"
W=/tmp/vmm-suite
PEER_PID=
VM_PID=
# Seconds each case may take before the watchdog shows where its processes
# are and kills them; the suite's own timeout (vmm.timeout) is larger than
# their sum, and the harness's overall one larger again, so a stall is
# reported here, not by a kill from outside.
WD_SELFTEST=60
WD_SELFTEST_2NODE=120
WD_LINUX=300
# What a node waits for the other at start and stop (ms): the peer waits
# at the stop barrier while the VM runs, so the longest case's limit.
NODE_WAIT_MS=$((WD_LINUX * 1000))
rm -rf $W && mkdir -p $W

T0=$(date +%s)
# A RESULT line, with the seconds since the last one at the end.
result() {
	echo "RESULT $* ($(( $(date +%s) - T0 )) s)"
	T0=$(date +%s)
}

# Nothing started here outlives the suite.
cleanup() {
	[ -n "$VM_PID" ] && kill -9 "$VM_PID" 2>/dev/null
	[ -n "$PEER_PID" ] && kill -9 "$PEER_PID" 2>/dev/null
	rm -rf $W
}
trap cleanup EXIT
# As if killed by the signal: init reports a suite timeout from 143.
trap 'exit 130' INT
trap 'exit 143' TERM

# Where process PID ($2 names it) and each of its threads are: cheap, and
# enough to tell a wait in the kernel (userfaultfd, KVM, a socket) from a
# lock in user space. The uffd's fdinfo counts faults not yet read.
dump_proc() {
	local pid=$1 what=$2 t fd
	if [ ! -d /proc/$pid ]; then
		echo "watchdog: $what (pid $pid) is gone"
		return
	fi
	echo "watchdog: $what pid $pid: $(tr '\0' ' ' < /proc/$pid/cmdline | cut -c1-160)"
	for t in /proc/$pid/task/*; do
		echo "watchdog: $what tid ${t##*/} $(cat $t/comm 2>/dev/null)" \
			"$(grep '^State' $t/status 2>/dev/null | tr '\t' ' ')" \
			"wchan $(cat $t/wchan 2>/dev/null)" \
			"syscall $(cut -d' ' -f1-3 $t/syscall 2>/dev/null)"
		sed 's/^/watchdog:     /' $t/stack 2>/dev/null
	done
	for fd in /proc/$pid/fd/*; do
		case $(readlink $fd 2>/dev/null) in
		*userfaultfd*)
			echo "watchdog: $what fd ${fd##*/} userfaultfd:" \
				$(grep -E '^(pending|total)' \
				  /proc/$pid/fdinfo/${fd##*/} 2>/dev/null)
			;;
		esac
	done
}

# Watchdog of a case: after $1 seconds show where the VMM and the peer
# are, what the peer printed, then kill both. A TERM ends the watchdog
# (and its sleep) when the case finished in time.
watchdog() {
	local s
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep "$1" &
	s=$!
	wait $s
	echo "watchdog: $name has not finished within $1 s; where it is:"
	[ -n "$VM_PID" ] && dump_proc "$VM_PID" "pagemesh vm"
	[ -n "$PEER_PID" ] && dump_proc "$PEER_PID" vmm_peer
	echo "watchdog: uptime $(cut -d' ' -f1 /proc/uptime) s, load $(cut -d' ' -f1-3 /proc/loadavg)"
	[ -f $W/peer.out ] && sed 's/^/watchdog: peer| /' $W/peer.out
	echo "$1" > $W/$name.watchdog
	[ -n "$VM_PID" ] && kill -9 "$VM_PID" 2>/dev/null
	[ -n "$PEER_PID" ] && kill -9 "$PEER_PID" 2>/dev/null
	exit 0
}

if [ ! -c /dev/kvm ]; then
	result vmm-kvm-device FAIL /dev/kvm missing after loading kvm_amd
	exit 0
fi
result vmm-kvm-device PASS /dev/kvm present
if [ ! -x "$PM" ] || [ ! -x "$PEER" ] || [ ! -x "$FILL" ]; then
	result vmm-selftest SKIP "$PM_BUILD/pagemesh or tests/vmm_* not built"
	exit 0
fi
ip link set lo up 2>/dev/null

# Config of node ID of a two-node cluster with MEM of region; ports from
# BASE.
node_cfg() {
	local id=$1 mem=$2 base=$3 other=$((1 - $1))
	cat > $W/node$id.cfg <<EOF
node = { id = $id; };
cluster = { name = "vmm"; nodes = 2; memory = "$mem";
	    startup_timeout_ms = $NODE_WAIT_MS; };
transports = { order = [ "tcp" ]; dir = "$PLUGINS";
	       tcp = { listen = "127.0.0.1:$((base + id))"; }; };
peers = ( { id = $other; tcp = "127.0.0.1:$((base + other))"; } );
pager = { threads = 2; timeout_ms = 30000; };
EOF
}

# Start the peer as node $1 of a two-node run (the watchdog of run_vm
# bounds it).
start_peer() {
	$PIN "$PEER" $W/node$1.cfg >$W/peer.out 2>&1 &
	PEER_PID=$!
}

# Run pagemesh vm ARGS under a watchdog of $1 seconds (which also covers
# the peer); its output is shown as it comes (so a stall still leaves the
# story on the console) and kept in $W/$name.out; its exit code in $rc,
# "watchdog" when the watchdog killed it. The peer, if any, must be gone
# within the same limit.
run_vm() {
	local limit=$1 wd tee_pid
	shift
	echo "$name: pagemesh vm $*"
	rm -f $W/$name.fifo $W/$name.watchdog
	mkfifo $W/$name.fifo || { rc=fifo; return; }
	tee $W/$name.out < $W/$name.fifo &
	tee_pid=$!
	# taskset execs the VMM: $! is its pid.
	$PIN "$PM" vm "$@" > $W/$name.fifo 2>&1 &
	VM_PID=$!
	watchdog "$limit" &
	wd=$!
	wait $VM_PID
	rc=$?
	VM_PID=
	# The peer leaves at the stop barrier together with the VM's node
	# (or after NODE_WAIT_MS if that died): still under the watchdog.
	if [ -n "$PEER_PID" ]; then
		wait $PEER_PID
		PEER_PID=
		grep -v -e ': info: ' -e 'Connection refused' $W/peer.out |
			sed 's/^/peer: /'
	fi
	kill $wd 2>/dev/null
	wait $wd
	wait $tee_pid
	[ -f $W/$name.watchdog ] && rc=watchdog
}

# "key=value" from the VMM's summary line in file $1.
summary() {
	sed -n "s/^vm: summary .* $2=\([0-9]*\).*/\1/p" "$1" | head -n1
}

# Pages the VM's node got with data from the other node.
check_remote() {
	local name=$1 f=$2 recv remote
	recv=$(summary $f pages_received)
	remote=$(summary $f faults_remote)
	if [ -z "$recv" ]; then
		result $name FAIL "no node counters in the VMM's summary"
		return 1
	fi
	if [ "$recv" -gt 0 ] && [ "$remote" -gt 0 ]; then
		return 0
	fi
	result $name FAIL "no pages came from the other node (pages_received=$recv faults_remote=$remote)"
	return 1
}

# (a) the built-in test guest on local memory
name=vmm-selftest
run_vm $WD_SELFTEST --selftest --mem 64M --timeout $((WD_SELFTEST - 20))
if [ $rc = 0 ] && grep -q '^selftest: .* ok$' $W/$name.out; then
	result $name PASS
else
	result $name FAIL "exit $rc"
fi

# (a2) the test guest on a region of two nodes: its upper half is homed on
# the peer, which wrote it first, so those pages travel on first touch.
name=vmm-selftest-2node
node_cfg 0 32M 7810
node_cfg 1 32M 7810
start_peer 1
run_vm $WD_SELFTEST_2NODE -c $W/node0.cfg --start-barrier --selftest \
	--timeout $((WD_SELFTEST_2NODE - 40))
if [ $rc != 0 ] || ! grep -q '^selftest: .* ok$' $W/$name.out; then
	result $name FAIL "exit $rc"
elif check_remote $name $W/$name.out; then
	result $name PASS "pages_received=$(summary $W/$name.out pages_received)"
fi

# (b) the Debian kernel booted by pagemesh vm with its RAM on two nodes.
# Its initramfs: busybox, vmm_fill (static) and an /init that fills and
# verifies FILL_MIB of memory (every 8-byte word unique to its place and
# the seed), prints the checksum, and ends the VM with vmm_fill's verdict
# as exit status: a byte to port 0x501 through /dev/port; `reboot -f`
# (reboot=k: i8042 reset, exit 0) only if that write fails.
make_initrd() {
	local d=$W/initrd
	mkdir -p $d/bin $d/proc $d/dev || return 1
	cp /bin/busybox $d/bin/busybox && cp "$FILL" $d/bin/vmm_fill || return 1
	cat > $d/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t devtmpfs devtmpfs /dev
arg() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" /proc/cmdline; }
echo "PM-VM-START cpus $(grep -c ^processor /proc/cpuinfo) at $(cut -d' ' -f1 /proc/uptime) s"
/bin/vmm_fill $(arg pm_seed) $(arg pm_mib)
status=$?
echo "PM-VM-END status $status at $(cut -d' ' -f1 /proc/uptime) s"
# The console is interrupt-driven: let it send everything before the VM
# ends (stty applies its setting with TCSADRAIN).
stty -F /dev/console onlcr
printf "\\$(printf %o $status)" |
	dd of=/dev/port bs=1 seek=$((0x501)) count=1 2>/dev/null
reboot -f
INIT
	chmod 755 $d/init
	(cd $d && find . | cpio -o -H newc 2>/dev/null | gzip -1) > $W/initrd.gz
}

boot_linux() {
	local seed want
	name=$1
	seed=$(( ($(date +%s) % 100000) * 1000 + $$ % 1000 ))
	want=$("$FILL" --expect $seed $FILL_MIB)
	node_cfg 0 $VM_MEM 7820
	node_cfg 1 $VM_MEM 7820
	# The VM's node is node 0: the kernel, loaded low, is homed here;
	# the initrd (loaded high) and much of what the guest touches later
	# come from the peer. (As node 1, with the kernel remote, the run
	# measured 5 times slower.)
	start_peer 1
	run_vm $WD_LINUX -c $W/node0.cfg --start-barrier --vcpus 2 \
		--kernel "$KERNEL" --initrd $W/initrd.gz \
		--timeout $((WD_LINUX - 60)) \
		--cmdline "console=ttyS0 reboot=k panic=-1 nokaslr i8042.noaux loglevel=4 pm_seed=$seed pm_mib=$FILL_MIB"
	if [ $rc != 0 ]; then
		result $name FAIL "pagemesh vm exited $rc"
	elif ! grep -q "^$want" $W/$name.out; then
		result $name FAIL "guest did not print the expected '$want'"
	elif ! grep -q "^PM-VM-START cpus 2 " $W/$name.out; then
		result $name FAIL "the guest did not bring up its 2 vCPUs"
	elif check_remote $name $W/$name.out; then
		result $name PASS "$FILL_MIB MiB written and verified in the guest, pages_received=$(summary $W/$name.out pages_received)"
	fi
}

if [ -z "$KERNEL" ]; then
	result vmm-linux-2node SKIP "no kernel in build/guest/kernel/boot"
elif ! make_initrd; then
	result vmm-linux-2node FAIL "could not build the nested initramfs"
else
	boot_linux vmm-linux-2node
fi
