# The library embedded in one program: three nodes in one process through
# the public API, their loggers and their /metrics.
$(B)/tests/api_test: tests/api_test.c tests/cluster.h $(LIB_A) \
		include/pagemesh/pagemesh.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ tests/api_test.c $(LIB_A) $(LDFLAGS) \
		$(CORE_LIBS) -lcmocka

TEST_BINS += $(B)/tests/api_test
TESTS += test-api
test-api: $(B)/tests/api_test plugins
	$(RUN) 120 $(B)/tests/api_test
