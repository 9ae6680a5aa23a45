# systemd units (etc/*.service) checked with systemd-analyze verify.
TESTS += test-units
test-units: $(BIN)
	$(RUN) 60 tests/units_test.sh
