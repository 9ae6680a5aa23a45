#!/bin/bash
# Guest test harness: boots a stock Debian kernel under QEMU (TCG) and runs
# test suites inside it, for code that needs KVM or RDMA the host lacks.
#
# usage: tests/guest/run.sh [SUITE...]     (default: every suites/*.sh)
#
# What it does
#   1. Kernel: the newest linux-image-6.1.0-N-amd64 from Debian's archive
#      (`apt-get download`, unpacked with dpkg-deb, depmod'ed), cached in
#      build/guest/kernel-KVER/ so later runs, asan ones too, reuse it.
#   2. initramfs: busybox-static, this script's guest/init, the kernel
#      modules every selected suite needs, and the shared libraries of the
#      files the suites list. Files themselves are read from the 9p share.
#   3. QEMU: -accel tcg -cpu max (AMD SVM with nested paging, so kvm_amd
#      works in the guest) -smp 2, -m 2048 or the largest SUITE.mem,
#      -nic none, the repo root shared over 9p and mounted at /mnt/host.
#   4. The guest's /init loads modules, runs each suite as
#      `sh /mnt/host/tests/guest/suites/NAME.sh` with PM_ROOT=/mnt/host and
#      PM_BUILD (build or build-asan, relative to PM_ROOT) under a per-suite
#      timeout, then powers off.
#
# Per suite, in tests/guest/suites/:
#   NAME.sh       the suite; prints lines `RESULT <test> PASS|FAIL|SKIP why`
#   NAME.modules  kernel modules, one per line, loaded in this order with
#                 their dependencies before NAME.sh runs; a line may carry
#                 module parameters ("dummy numdummies=0"). 9p and virtio
#                 are always loaded at boot.
#   NAME.files    files whose shared libraries (ldd) go into the initramfs;
#                 paths relative to the repo root (a leading "build/" means
#                 the build folder in use: build-asan under `make asan`) or
#                 absolute host paths (copied into the initramfs at the same
#                 path, with their libraries; globs allowed). A missing file
#                 is a warning: the suite reports the SKIP itself.
#   NAME.mem      optional: guest RAM in MiB the suite needs (default 2048)
#   NAME.timeout  optional: seconds the suite may take (default 240)
#
# Output: the guest console relayed with a "guest| " prefix, then every
# RESULT line and "guest: N passed, M failed, K skipped".
# Exit: 0 at least one RESULT and no FAIL; 1 otherwise (including a guest
# that did not finish); 77 when QEMU or the kernel cannot be had (reason
# printed). Env: PM_BUILD (default build), PM_GUEST_TIMEOUT (overall
# seconds; default 90 + the suites' timeouts, at most PM_GUEST_TIMEOUT_MAX
# when set), PM_GUEST_KEEP=1 keeps the work folder. Nothing is left running: QEMU runs under timeout(1) and is
# killed on any exit of this script.
set -u

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=${PM_BUILD:-build}
SUITE_DIR=$ROOT/tests/guest/suites
CACHE=$ROOT/build/guest
DEFAULT_MEM=2048
DEFAULT_TIMEOUT=240
BASE_MODULES="virtio_pci 9pnet_virtio 9p"

skip() {
	echo "guest: SKIP: $*"
	exit 77
}

die() {
	echo "guest: error: $*" >&2
	exit 1
}

need() {
	command -v "$1" >/dev/null 2>&1 ||
		skip "$1 not found (\`make deps\` installs $2)"
}

need qemu-system-x86_64 qemu-system-x86
need cpio cpio
need depmod kmod
need modprobe kmod
need dpkg-deb dpkg
need flock util-linux
BUSYBOX=/bin/busybox
# The initramfs has no libc of its own: busybox must be the static one.
[ -x "$BUSYBOX" ] && ! ldd "$BUSYBOX" >/dev/null 2>&1 ||
	skip "no static /bin/busybox (\`make deps\` installs busybox-static)"

# --- suites -----------------------------------------------------------------
if [ $# -gt 0 ]; then
	SUITES="$*"
else
	SUITES=$(cd "$SUITE_DIR" 2>/dev/null && ls *.sh 2>/dev/null |
		 sed 's/\.sh$//' | tr '\n' ' ')
fi
SUITES=$(echo $SUITES)	# one space between names, none around
[ -n "$SUITES" ] || die "no suites in $SUITE_DIR"
for s in $SUITES; do
	case $s in
	*[!A-Za-z0-9_-]*) die "suite name '$s': use letters, digits, - and _" ;;
	esac
	[ -f "$SUITE_DIR/$s.sh" ] || die "no suite $SUITE_DIR/$s.sh"
done

# A number from SUITE.EXT, or the default; bad content is an error, not a
# silent default.
suite_num() {
	local f=$SUITE_DIR/$1.$2 v
	[ -f "$f" ] || { echo "$3"; return; }
	v=$(tr -d ' \t\n' < "$f")
	case $v in
	''|*[!0-9]*) die "$f: expected a number, found '$v'" ;;
	esac
	echo "$v"
}

MEM=$DEFAULT_MEM
SUM_TIMEOUT=0
for s in $SUITES; do
	m=$(suite_num "$s" mem $DEFAULT_MEM) || exit 1
	t=$(suite_num "$s" timeout $DEFAULT_TIMEOUT) || exit 1
	[ "$m" -gt "$MEM" ] && MEM=$m
	SUM_TIMEOUT=$((SUM_TIMEOUT + t))
done
OVERALL=${PM_GUEST_TIMEOUT:-$((90 + SUM_TIMEOUT))}
# make's own timeout around this script must stay the outer one.
[ -n "${PM_GUEST_TIMEOUT_MAX:-}" ] && [ "$OVERALL" -gt "$PM_GUEST_TIMEOUT_MAX" ] &&
	OVERALL=$PM_GUEST_TIMEOUT_MAX

# --- kernel -----------------------------------------------------------------
mkdir -p "$CACHE" || die "cannot create $CACHE"
# Two runs at once (build and build-asan) must not unpack the same kernel.
exec 9>"$CACHE/.lock"
flock -w 600 9 || die "timed out waiting for the lock on $CACHE/.lock"

KDIR=$(ls -d "$CACHE"/kernel-6.1.0-*-amd64 2>/dev/null | sort -V | tail -n1)
if [ -z "$KDIR" ] || [ ! -f "$KDIR/.ready" ]; then
	PKG=$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' \
	      2>/dev/null | awk '{print $1}' | sort -V | tail -n1)
	[ -n "$PKG" ] ||
		skip "no linux-image-6.1.0-N-amd64 in the apt lists (try apt-get update)"
	KVER=${PKG#linux-image-}
	KDIR=$CACHE/kernel-$KVER
	echo "guest: fetching $PKG into $KDIR"
	rm -rf "$KDIR" "$CACHE/dl" && mkdir -p "$CACHE/dl" || die "mkdir $CACHE/dl"
	(cd "$CACHE/dl" && apt-get download "$PKG") >"$CACHE/dl/log" 2>&1 ||
		skip "apt-get download $PKG failed: $(tail -n1 "$CACHE/dl/log")"
	dpkg-deb -x "$CACHE"/dl/"$PKG"_*.deb "$KDIR" ||
		die "dpkg-deb -x $PKG failed"
	depmod -b "$KDIR" "$KVER" || die "depmod -b $KDIR $KVER failed"
	rm -rf "$CACHE/dl"
	touch "$KDIR/.ready"
fi
KVER=${KDIR##*/kernel-}
VMLINUZ=$KDIR/boot/vmlinuz-$KVER
[ -f "$VMLINUZ" ] || die "$VMLINUZ missing (remove $KDIR to refetch)"
# Suites that boot the same kernel nested (the VMM's) find it here.
ln -sfn "kernel-$KVER" "$CACHE/kernel"
flock -u 9

# --- initramfs --------------------------------------------------------------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/pm-guest.XXXXXX") || die "mktemp failed"
QPID=
HOSTWD=
cleanup() {
	[ -n "$HOSTWD" ] && kill "$HOSTWD" 2>/dev/null
	[ -n "$QPID" ] && kill "$QPID" 2>/dev/null && wait "$QPID" 2>/dev/null
	[ "${PM_GUEST_KEEP:-0}" = 1 ] && echo "guest: kept $WORK" ||
		rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

IRD=$WORK/initramfs
mkdir -p "$IRD"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,mnt/host,lib/modules,modules,root} ||
	die "mkdir in $IRD"
cp "$BUSYBOX" "$IRD/bin/busybox" || die "copy busybox"
cp "$ROOT/tests/guest/init" "$IRD/init" && chmod 755 "$IRD/init" ||
	die "copy tests/guest/init"

# Copy a host file to the same path in the initramfs (dereferencing links;
# keeping the link name that the dynamic loader looks for).
put() {
	local src=$1 dst=$IRD$1
	[ -e "$dst" ] && return 0
	mkdir -p "$(dirname "$dst")" && cp -L "$src" "$dst" ||
		die "cannot copy $src into the initramfs"
}

# The libraries an ELF needs, by ldd; a non-ELF file needs none.
put_libs() {
	local f=$1 lib
	head -c4 "$f" 2>/dev/null | grep -q 'ELF' || return 0
	for lib in $(ldd "$f" 2>/dev/null |
		     sed -n 's/.*=> \(\/[^ ]*\).*/\1/p; s/^[[:space:]]*\(\/[^ ]*\) (.*/\1/p'); do
		put "$lib"
	done
}

# libgcc_s: pthread_exit and cancellation dlopen it, so ldd cannot see it.
GCC_S=$(ldconfig -p | awk '/libgcc_s\.so\.1 .*x86-64/ {print $NF; exit}')
[ -n "$GCC_S" ] && put "$GCC_S" || echo "guest: warning: libgcc_s.so.1 not found"

# Put the modules named on stdin ("name [params]" lines) and their
# dependencies into the initramfs; write the guest's load list, in order,
# as "PATH [params]" lines to $1. --show-depends prints "insmod PATH" for
# each module, dependencies first, or "builtin NAME".
put_modules() {
	local out=$1 line name params path rel
	: > "$out"
	while IFS= read -r line; do
		line=${line%%#*}
		set -- $line
		[ $# -gt 0 ] || continue
		name=$1; shift; params="$*"
		modprobe -d "$KDIR" -S "$KVER" --show-depends "$name" \
			>"$WORK/deps" 2>"$WORK/modprobe.err" ||
			die "kernel module '$name' ($KVER): $(cat "$WORK/modprobe.err")"
		while read -r kind path _; do
			[ "$kind" = insmod ] || continue
			rel=/lib/modules/$KVER/${path#*/lib/modules/$KVER/}
			mkdir -p "$(dirname "$IRD$rel")"
			case $path in
			*.ko.xz) rel=${rel%.xz}; [ -e "$IRD$rel" ] ||
				xz -dc "$path" > "$IRD$rel" || die "xz -d $path" ;;
			*.ko.zst) rel=${rel%.zst}; [ -e "$IRD$rel" ] ||
				zstd -qdc "$path" > "$IRD$rel" || die "zstd -d $path" ;;
			*) [ -e "$IRD$rel" ] || cp "$path" "$IRD$rel" ||
				die "copy $path" ;;
			esac
			# Parameters belong to the module named, not its deps.
			if [ "$(basename "$rel" .ko | tr - _)" = "$(echo "$name" | tr - _)" ]; then
				echo "$rel $params" >> "$out"
			else
				echo "$rel" >> "$out"
			fi
		done < "$WORK/deps"
	done
}

echo "$BASE_MODULES" | tr ' ' '\n' | put_modules "$IRD/modules/base.list"

for s in $SUITES; do
	if [ -f "$SUITE_DIR/$s.modules" ]; then
		put_modules "$IRD/modules/$s.list" < "$SUITE_DIR/$s.modules"
	else
		: > "$IRD/modules/$s.list"
	fi
	[ -f "$SUITE_DIR/$s.files" ] || continue
	while IFS= read -r line; do
		line=${line%%#*}
		line=$(echo "$line" | sed 's/^[[:space:]]*//; s/[[:space:]]*$//')
		[ -n "$line" ] || continue
		case $line in
		/*)
			found=0
			for f in $line; do
				[ -e "$f" ] || continue
				found=1
				put "$f"
				put_libs "$f"
			done
			[ $found = 1 ] ||
				echo "guest: warning: $s.files: $line: not found on this host"
			;;
		*)
			[ "$B" != build ] && line=${line/#build\//$B/}
			if [ -e "$ROOT/$line" ]; then
				put_libs "$ROOT/$line"
			else
				echo "guest: warning: $s.files: $line: not found (not built?)"
			fi
			;;
		esac
	done < "$SUITE_DIR/$s.files"
done

# What the guest's /init runs: the suites, their timeouts, the build folder.
{
	echo "PM_BUILD=$B"
	echo "SUITES='$SUITES'"
	for s in $SUITES; do
		echo "TIMEOUT_${s//-/_}=$(suite_num "$s" timeout $DEFAULT_TIMEOUT)"
	done
} > "$IRD/etc/pm-guest.conf"

(cd "$IRD" && find . | cpio -o -H newc --quiet | gzip -1) > "$WORK/initramfs.cpio.gz" ||
	die "building the initramfs failed"

# --- boot -------------------------------------------------------------------
LOG=$WORK/console.log
: > "$LOG"
echo "guest: booting $KVER, ${MEM} MiB, suites: $SUITES (timeout ${OVERALL}s)"
timeout -k 5 "$OVERALL" qemu-system-x86_64 -accel tcg,thread=multi -cpu max \
	-smp 2 -m "$MEM" -kernel "$VMLINUZ" -initrd "$WORK/initramfs.cpio.gz" \
	-append "console=ttyS0 panic=-1 loglevel=4 rdinit=/init" \
	-virtfs "local,path=$ROOT,mount_tag=hostshare,security_model=none,id=hs" \
	-nographic -no-reboot -nic none -serial "file:$LOG" -monitor none \
	-pidfile "$WORK/qemu.pid" \
	</dev/null >"$WORK/qemu.out" 2>&1 &
QPID=$!
# Host side of a guest that never finished: before the overall timeout
# kills QEMU, show its threads twice, 2 s apart (CPU ticks moving: the
# guest runs, e.g. waits in a loop; still: QEMU itself is stuck).
(
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep $((OVERALL > 30 ? OVERALL - 15 : OVERALL / 2)) & s=$!
	wait $s
	qp=$(cat "$WORK/qemu.pid" 2>/dev/null)
	[ -n "$qp" ] && [ -d /proc/$qp ] || exit 0
	for round in 1 2; do
		echo "guest: QEMU (pid $qp) has not finished; its threads (round $round):"
		for t in /proc/$qp/task/*; do
			echo "guest:   tid ${t##*/} $(cat $t/comm) $(awk '{print "state", $3, "utime", $14, "stime", $15}' $t/stat) wchan $(cat $t/wchan)"
		done
		[ $round = 1 ] && sleep 2
	done
) &
HOSTWD=$!
# Relay the console while QEMU runs (line by line: sed -u, no buffering
# stage in the pipe); tail exits when QEMU does.
tail -n +1 -f --pid="$QPID" "$LOG" | sed -u 's/\r$//; s/^/guest| /' &
RELAY=$!
wait "$QPID"
QRC=$?
QPID=
kill $HOSTWD 2>/dev/null
wait $HOSTWD 2>/dev/null
HOSTWD=
wait "$RELAY"

mkdir -p "$ROOT/$B/guest" && tr -d '\r' < "$LOG" > "$ROOT/$B/guest/console.log"

if [ "$QRC" = 124 ] || [ "$QRC" = 137 ]; then
	echo "guest: QEMU killed after the overall timeout of ${OVERALL}s"
elif [ "$QRC" != 0 ]; then
	echo "guest: QEMU exited with status $QRC:"
	sed 's/^/guest: qemu: /' "$WORK/qemu.out"
fi

# Also found after other text on the same line (output without a final
# newline before it): a FAIL must never go uncounted.
RESULTS=$(tr -d '\r' < "$LOG" |
	  grep -oE 'RESULT [^ ]+ (PASS|FAIL|SKIP)( .*|$)')
DONE=$(tr -d '\r' < "$LOG" | grep -c 'PM-GUEST-DONE$')
pass=$(printf '%s\n' "$RESULTS" | grep -c ' PASS\( \|$\)')
fail=$(printf '%s\n' "$RESULTS" | grep -c ' FAIL\( \|$\)')
skipn=$(printf '%s\n' "$RESULTS" | grep -c ' SKIP\( \|$\)')

echo "guest: results (console log: $B/guest/console.log):"
[ -n "$RESULTS" ] && printf '%s\n' "$RESULTS" | sed 's/^/  /'
if [ "$DONE" = 0 ]; then
	echo "  RESULT guest-run FAIL the guest did not finish its suites"
	fail=$((fail + 1))
fi
echo "guest: $pass passed, $fail failed, $skipn skipped"
[ -n "$RESULTS" ] && [ "$fail" = 0 ] && exit 0
exit 1
