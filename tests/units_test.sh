#!/bin/sh
# etc/pagemesh-node@.service and etc/pagemesh-coordinator.service pass
# `systemd-analyze verify` (with ExecStart pointed at the build's binary,
# which it requires to exist; tests/install_test.sh verifies the installed
# copies as they are), and the binary they start can tell systemd it is
# ready. Env: PM_BUILD (the build folder).
set -u
B=${PM_BUILD:-build}
ABS_B=$(cd "$B" && pwd)
pass=0
fail=0
if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "SKIP units_test: systemd-analyze not found (apt-get install systemd)"
	exit 0
fi
T=$(mktemp -d /tmp/pm-units-XXXXXX)
trap 'rm -rf "$T"' EXIT INT TERM

ok() { pass=$((pass + 1)); echo "PASS $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; sed 's/^/    /' "$T/out"; }

for u in etc/pagemesh-node@.service etc/pagemesh-coordinator.service; do
	name=$(basename "$u")
	# A template is verified through an instance.
	case $name in *@.service) name=${name%@.service}@test.service ;; esac
	sed "s|/usr/local/bin/pagemesh|$ABS_B/pagemesh|" "$u" > "$T/$name"
	if systemd-analyze verify "$T/$name" > "$T/out" 2>&1 &&
	   [ ! -s "$T/out" ]; then
		ok "systemd-analyze verify $u"
	else
		bad "systemd-analyze verify $u"
	fi
	if grep -q '^Type=notify$' "$u" && grep -q "^ExecStart=/usr/local/bin/pagemesh " "$u"; then
		ok "$u: Type=notify, ExecStart the installed pagemesh"
	else
		: > "$T/out"
		bad "$u: Type=notify, ExecStart the installed pagemesh"
	fi
done
if nm -D --undefined-only "$B/pagemesh" 2>"$T/out" | grep -qw sd_notify; then
	ok "$B/pagemesh calls sd_notify (Type=notify works)"
else
	echo "built without libsystemd: run make deps" > "$T/out"
	bad "$B/pagemesh calls sd_notify (Type=notify works)"
fi

# What Type=notify waits for, without systemd: a datagram socket named by
# NOTIFY_SOCKET gets READY=1 once the node is up (and the coordinator
# serves), STOPPING=1 on SIGTERM.
cat > "$T/one.cfg" <<CFG
node = { id = 0; };
cluster = { name = "units"; nodes = 1; memory = "1M"; };
transports = { order = [ "tcp" ]; tcp = { listen = "127.0.0.1:0"; }; };
CFG
notified() {
	python3 - "$T/notify" "$@" <<'PY' > "$T/out" 2>&1
import os, signal, socket, subprocess, sys, time
path, argv = sys.argv[1], sys.argv[2:]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
s.settimeout(20)
p = subprocess.Popen(argv, env=dict(os.environ, NOTIFY_SOCKET=path),
                     stdout=subprocess.DEVNULL)
try:
    got = []
    for want in ("READY=1", "STOPPING=1"):
        while not any(want in g for g in got):
            got.append(s.recv(4096).decode())
        print("got", repr(got[-1]))
        if want == "READY=1":
            p.send_signal(signal.SIGTERM)
    sys.exit(p.wait(10))
except Exception as e:
    print("failed:", e, "got", got)
    p.kill()
    sys.exit(1)
finally:
    os.unlink(path)
PY
}
if notified "$ABS_B/pagemesh" node -c "$T/one.cfg"; then
	ok "pagemesh node: READY=1 when up, STOPPING=1 on SIGTERM"
else
	bad "pagemesh node: READY=1 when up, STOPPING=1 on SIGTERM"
fi
if notified "$ABS_B/pagemesh" coordinator --listen 127.0.0.1:0; then
	ok "pagemesh coordinator: READY=1 when serving, STOPPING=1 on SIGTERM"
else
	bad "pagemesh coordinator: READY=1 when serving, STOPPING=1 on SIGTERM"
fi
echo "units_test: $pass passed, $fail failed"
[ "$fail" = 0 ]
