#!/bin/sh
# The install story as a user meets it: `make install PREFIX=<tmp>` (in a
# build folder of its own, so the tree under test is not relinked), the
# README's C example built and run against the build tree and against the
# install through pkg-config (shared and static), the installed binary
# finding its plugins without transports.dir, and `make uninstall` leaving
# the prefix empty. Env: PM_BUILD (the build folder), MAKE, SAN (the
# sanitizer flags of a `make asan` build, which the README's commands need
# added to link a sanitized library; empty otherwise).
set -u
B=${PM_BUILD:-build}
ROOT=$(pwd)
ABS_B=$(cd "$B" && pwd)
MAKE=${MAKE:-make}
SAN=${SAN:-}
T=$(mktemp -d /tmp/pm-install-XXXXXX)
P=$T/prefix
pass=0
fail=0
trap 'rm -rf "$T"' EXIT INT TERM

ok() { pass=$((pass + 1)); echo "PASS $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; [ -f "$T/log" ] && sed 's/^/    /' "$T/log"; }
check() { name=$1; shift; if "$@" >"$T/log" 2>&1; then ok "$name"; else bad "$name"; fi; }

# A one-node cluster on loopback, with no transports.dir.
cat > "$T/node.cfg" <<CFG
node = { id = 0; };
cluster = { name = "install"; nodes = 1; memory = "1M";
            startup_timeout_ms = 5000; };
transports = { order = [ "tcp" ]; tcp = { listen = "127.0.0.1:0"; }; };
CFG
# The README's example, exactly as it stands there.
awk '/^```c$/ { on = 1; next } on && /^```$/ { exit } on' README.md \
	> "$T/app.c"
grep -q pm_node_start "$T/app.c" || { echo "FAIL README has no C example"; exit 1; }

# Runs a built example from $T (so no relative build/plugins helps it).
run_app() { (cd "$T" && "$@" node.cfg) | grep -q '^counter 1 '; }

check "README example, build tree (-L$B, rpath)" \
	cc $SAN -o "$T/app-tree" "$T/app.c" -Iinclude -L"$B" -lpagemesh \
	-Wl,-rpath,"$ABS_B"
check "  runs and finds $B/plugins" run_app "$T/app-tree"

check "make install PREFIX=$P" $MAKE --no-print-directory -s -j2 install \
	B="$T/build" PREFIX="$P"
[ -f "$T/build/libpagemesh.so.0" ] || [ -L "$T/build/libpagemesh.so.0" ] &&
	ok "build folder has the soname link" ||
	bad "build folder has the soname link"

export PKG_CONFIG_PATH="$P/lib/pkgconfig"
check "pkg-config says the prefix" \
	test "$(pkg-config --variable=prefix pagemesh)" = "$P"
check "installed pagemesh finds its plugins without transports.dir" \
	sh -c "cd '$T' && '$P/bin/pagemesh' --list-transports -c node.cfg | grep -q '$P/lib/pagemesh/plugins/tcp.so'"
if command -v systemd-analyze >/dev/null 2>&1; then
	check "installed units pass systemd-analyze verify" sh -c \
		"cp '$P/lib/systemd/system/pagemesh-node@.service' '$T/pagemesh-node@x.service' && systemd-analyze verify '$T/pagemesh-node@x.service' '$P/lib/systemd/system/pagemesh-coordinator.service' && grep -q 'ExecStart=$P/bin/pagemesh ' '$T/pagemesh-node@x.service'"
else
	echo "SKIP installed units: systemd-analyze not found"
fi
check "README example, pkg-config, shared" sh -c \
	"cc $SAN -o '$T/app-shared' '$T/app.c' \$(pkg-config --cflags --libs pagemesh)"
check "  links the installed libpagemesh.so.0" sh -c \
	"LD_LIBRARY_PATH='$P/lib' ldd '$T/app-shared' | grep -q '$P/lib/libpagemesh.so.0'"
check "  runs" run_app env LD_LIBRARY_PATH="$P/lib" "$T/app-shared"
check "README example, pkg-config --static" sh -c \
	"cc $SAN -o '$T/app-static' '$T/app.c' \$(pkg-config --cflags pagemesh) -Wl,-Bstatic -lpagemesh -Wl,-Bdynamic -Wl,--as-needed \$(pkg-config --static --libs pagemesh)"
check "  needs no libpagemesh.so" sh -c \
	"test -x '$T/app-static' && ! readelf -d '$T/app-static' | grep -q libpagemesh"
check "  runs and finds the installed plugins" run_app "$T/app-static"

check "make uninstall" $MAKE --no-print-directory -s uninstall \
	B="$T/build" PREFIX="$P"
check "  leaves nothing behind" sh -c "find '$P' -mindepth 1 | \
	sed 's/^/left: /' >&2; [ -z \"\$(find '$P' -mindepth 1)\" ]"

echo "install_test: $pass passed, $fail failed"
[ "$fail" = 0 ]
