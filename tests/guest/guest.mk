# Guest test harness: `make test` boots a Debian kernel under QEMU and runs
# tests/guest/suites/* inside it (KVM and RDMA code the host cannot run).
# run.sh exits 77 when QEMU or the kernel cannot be had: a skip, not a
# failure. Its last line is "guest: N passed, M failed, K skipped".
TESTS += test-guest

# The suites run programs from the build folder (pagemesh, plugins, test
# programs), so those are built first.
# A run that fails is run once more, loudly: the nested-KVM guest stalled
# before its kernel started in 1 of 6 runs here (after "node 0 of 2 up",
# no "vm:" line; open bug, see issue 9). A second failure fails the target.
test-guest: all $(TEST_BINS)
	@rc=0; PM_GUEST_TIMEOUT_MAX=600 $(RUN) 720 tests/guest/run.sh || rc=$$?; \
	if [ $$rc != 0 ] && [ $$rc != 77 ]; then \
		echo "guest: FIRST RUN FAILED (exit $$rc); running the suites once more"; \
		rc=0; PM_GUEST_TIMEOUT_MAX=600 $(RUN) 720 tests/guest/run.sh || rc=$$?; \
	fi; \
	case $$rc in \
	0) ;; \
	77) echo "guest: 0 passed, 0 failed, 1 skipped (see the reason above)";; \
	124|137) echo "guest: FAILED: tests/guest/run.sh timed out"; exit 1;; \
	*) echo "guest: FAILED (exit $$rc)"; exit 1;; \
	esac

# run.sh's own checks that need no QEMU run: missing QEMU is a skip (77),
# unknown or path-like suite names are refused.
TESTS += test-guest-harness

test-guest-harness:
	$(RUN) 60 tests/guest/harness_test.sh
