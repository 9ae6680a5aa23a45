#!/bin/bash
# Host-side checks of tests/guest/run.sh that need no QEMU run: it skips
# (77, with the reason) when QEMU is missing, and refuses unknown suites.
# Prints "harness: N passed, M failed"; exit 0 only if every check passed.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RUNSH=$ROOT/tests/guest/run.sh
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pm-harness.XXXXXX") || exit 1
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0

check() {	# NAME WANT_RC WANT_TEXT RC OUTPUT
	if [ "$4" = "$2" ] && printf '%s' "$5" | grep -q -- "$3"; then
		echo "harness: $1: ok"
		pass=$((pass + 1))
	else
		echo "harness: $1: FAILED: exit $4 (want $2), output:"
		printf '%s\n' "$5" | sed 's/^/  | /'
		fail=$((fail + 1))
	fi
}

# A PATH with every host command except QEMU.
mkdir -p "$TMP/bin"
for d in /usr/local/bin /usr/bin /bin /usr/sbin /sbin; do
	for f in "$d"/*; do
		[ -x "$f" ] || continue
		n=${f##*/}
		[ "$n" = qemu-system-x86_64 ] && continue
		[ -e "$TMP/bin/$n" ] || ln -s "$f" "$TMP/bin/$n"
	done
done
out=$(PATH=$TMP/bin "$RUNSH" vmm 2>&1)
check "no QEMU is a skip" 77 "SKIP: qemu-system-x86_64 not found" $? "$out"

out=$("$RUNSH" no-such-suite 2>&1)
check "unknown suite" 1 "no suite .*no-such-suite.sh" $? "$out"

out=$("$RUNSH" '../x' 2>&1)
check "suite name with a path" 1 "use letters, digits" $? "$out"

echo "harness: $pass passed, $fail failed"
[ "$fail" = 0 ]
