# Guest suite: the pagemesh VMM under real (nested) KVM.
if [ -c /dev/kvm ]; then
	echo "RESULT vmm-kvm-device PASS /dev/kvm present"
else
	echo "RESULT vmm-kvm-device FAIL /dev/kvm missing after loading kvm_amd"
fi
