# The pagemesh command as an operator meets it: exit 78 with FILE:LINE for
# configuration errors, signals during start-up, -v / -vv / PM_LOG_LEVEL.
TESTS += test-cli
test-cli: $(BIN) plugins
	$(RUN) 120 tests/cli_test.sh
