# Coordinator and metrics tests: the embedded coordinator as a real process,
# the client against it and against real etcd (one member and three), and
# the metrics endpoint parsed back from HTTP.
COORD_TESTS := coord_server_test coord_etcd_test metrics_test

$(addprefix $(B)/tests/,$(COORD_TESTS)): $(B)/tests/%: tests/%.c \
		tests/coord_util.h $(LIB_A) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(CORE_CFLAGS) -Itests -o $@ $< $(LIB_A) \
		$(LDFLAGS) $(CORE_LIBS) -lcmocka

TEST_BINS += $(addprefix $(B)/tests/,$(COORD_TESTS))
TESTS += test-coord-server test-coord-etcd test-metrics

test-coord-server: $(B)/tests/coord_server_test $(BIN)
	$(RUN) 120 $(B)/tests/coord_server_test

test-coord-etcd: $(B)/tests/coord_etcd_test
	$(RUN) 240 $(B)/tests/coord_etcd_test

test-metrics: $(B)/tests/metrics_test $(BIN)
	$(RUN) 60 $(B)/tests/metrics_test
