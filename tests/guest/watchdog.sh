# Sourced by the guest suites (busybox sh): a watchdog that, when a test
# program has not finished in time, shows where each of its threads is and
# then kills it, so a hang is diagnosed inside the suite's time.

# Where process PID ($2 names it) and each of its threads are: cheap, and
# enough to tell a wait in the kernel (userfaultfd, KVM, a socket, a
# futex) from a busy loop. A userfaultfd's fdinfo counts faults not read.
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
			"syscall $(cut -d' ' -f1-3 $t/syscall 2>/dev/null)" \
			"utime+stime $(cut -d' ' -f14-15 $t/stat 2>/dev/null)"
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

# watchdog LIMIT MARK PID:NAME...   (run it in the background)
# After LIMIT seconds: dump every PID, write LIMIT to the file MARK (so the
# caller can tell a kill by the watchdog from a crash), kill them all. A
# TERM ends it (and its sleep) early: the caller's programs finished.
watchdog() {
	local limit=$1 mark=$2 s p
	shift 2
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep "$limit" &
	s=$!
	wait $s
	echo "watchdog: not finished within $limit s; where it is:"
	for p in "$@"; do
		dump_proc "${p%%:*}" "${p#*:}"
	done
	echo "watchdog: uptime $(cut -d' ' -f1 /proc/uptime) s, load $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "$limit" > "$mark"
	for p in "$@"; do
		kill -9 "${p%%:*}" 2>/dev/null
	done
	exit 0
}

# watch_stop PID: end a watchdog whose programs finished in time.
watch_stop() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}
