# The logger: repeated lines rate-limited with a count of those dropped.
$(B)/tests/log_test: tests/log_test.c $(LIB_A) core/log.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -Icore -o $@ tests/log_test.c $(LIB_A) $(LDFLAGS) \
		$(CORE_LIBS) -lcmocka

TEST_BINS += $(B)/tests/log_test
TESTS += test-log
test-log: $(B)/tests/log_test
	$(RUN) 30 $(B)/tests/log_test
