# Trust and failure: peer authentication against real nodes and a raw
# wire client (auth_test), and fault injection in network namespaces
# (fault_test, with fault_worker as the node that times its SIGBUS).
$(B)/tests/auth_test: tests/auth_test.c tests/cluster.h core/node/proto.h \
		plugins/common/frame.h include/pagemesh/transport.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -Iplugins/common $(CORE_INC) -o $@ tests/auth_test.c \
		$(LDFLAGS) $(shell pkg-config --libs libcrypto) -lcmocka

TEST_BINS += $(B)/tests/auth_test
TESTS += test-auth
test-auth: $(B)/tests/auth_test $(BIN) plugins
	$(RUN) 180 $(B)/tests/auth_test

$(B)/tests/fault_worker: tests/fault_worker.c $(LIB_A) include/pagemesh/pagemesh.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ tests/fault_worker.c $(LIB_A) $(LDFLAGS) \
		$(CORE_LIBS)

$(B)/tests/fault_test: tests/fault_test.c tests/cluster.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ tests/fault_test.c $(LDFLAGS) -lcmocka

# A transport that holds one request in N for a while (fault_test's slow
# peers), wrapping another plugin; built against the public header only.
$(B)/tests/slow/slow.so: tests/slow_plugin.c include/pagemesh/transport.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  PLUGIN  $@")
	$(Q)$(CC) $(CFLAGS) -fvisibility=hidden -shared -o $@ $< $(LDFLAGS) -ldl

TEST_BINS += $(B)/tests/fault_worker $(B)/tests/fault_test \
	$(B)/tests/slow/slow.so
TESTS += test-fault
test-fault: $(B)/tests/fault_test $(B)/tests/fault_worker \
		$(B)/tests/coh_worker $(B)/tests/slow/slow.so plugins
	PM_TEST_SKIP='test_packet_loss_*' $(RUN) 900 $(B)/tests/fault_test

# The packet-loss cases (~6 min: 10% and 20%) apart, so they run beside the
# others.
TESTS += test-fault-loss
test-fault-loss: $(B)/tests/fault_test $(B)/tests/coh_worker plugins
	PM_TEST_FILTER='test_packet_loss_*' $(RUN) 900 $(B)/tests/fault_test
