# Guest suite: the pagemesh VMM under real (nested) KVM.
PM=$PM_ROOT/$PM_BUILD/pagemesh

if [ ! -c /dev/kvm ]; then
	echo "RESULT vmm-kvm-device FAIL /dev/kvm missing after loading kvm_amd"
	exit 0
fi
echo "RESULT vmm-kvm-device PASS /dev/kvm present"

# (a) the built-in test guest on local memory
out=$("$PM" vm --selftest --mem 64M --timeout 60 2>&1); rc=$?
echo "$out"
if [ $rc = 0 ] && echo "$out" | grep -q '^selftest: .* ok$'; then
	echo "RESULT vmm-selftest PASS"
else
	echo "RESULT vmm-selftest FAIL exit $rc"
fi
