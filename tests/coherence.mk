# Multi-node coherence: coh_worker is one node running a workload through
# the public API; coherence_test starts clusters of them (loopback, and
# network namespaces joined by veth) and checks every node's verdict.
# tests/coh_worker/: main.c and one file per workload.
COH_WORKER_SRCS := $(wildcard tests/coh_worker/*.c)
$(B)/tests/coh_worker: $(COH_WORKER_SRCS) tests/coh_worker/coh_worker.h \
		$(LIB_A) include/pagemesh/pagemesh.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $(COH_WORKER_SRCS) $(LIB_A) $(LDFLAGS) \
		$(CORE_LIBS)

TEST_BINS += $(B)/tests/coh_worker

$(B)/tests/coherence_test: tests/coherence_test.c tests/cluster.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ tests/coherence_test.c $(LDFLAGS) -lcmocka

TEST_BINS += $(B)/tests/coherence_test
TESTS += test-coherence
test-coherence: $(B)/tests/coherence_test $(B)/tests/coh_worker plugins
	$(RUN) 900 $(B)/tests/coherence_test

$(B)/tests/config_test: tests/config_test.c tests/cluster.h $(LIB_A) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(CORE_CFLAGS) -o $@ tests/config_test.c $(LIB_A) \
		$(LDFLAGS) $(CORE_LIBS) -lcmocka

TEST_BINS += $(B)/tests/config_test
TESTS += test-config
test-config: $(B)/tests/config_test $(BIN)
	$(RUN) 120 $(B)/tests/config_test

$(B)/tests/demo_app: tests/demo_app.c $(LIB_A) include/pagemesh/pagemesh.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ tests/demo_app.c $(LIB_A) $(LDFLAGS) \
		$(CORE_LIBS) -lm

TEST_BINS += $(B)/tests/demo_app

$(B)/tests/coord_cluster_test: tests/coord_cluster_test.c tests/cluster.h \
		tests/coord_util.h tests/etcd.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(CORE_CFLAGS) -o $@ tests/coord_cluster_test.c \
		$(LDFLAGS) $(CORE_LIBS) -lcmocka

TEST_BINS += $(B)/tests/coord_cluster_test
TESTS += test-coord-cluster
test-coord-cluster: $(B)/tests/coord_cluster_test $(B)/tests/coh_worker $(BIN) \
		plugins
	$(RUN) 600 $(B)/tests/coord_cluster_test

# `pagemesh node` and API programs in one cluster: mixed_worker is an API
# program (public header only); mixed_test runs it beside `pagemesh node`
# processes and times its pm_node_stop().
$(B)/tests/mixed_worker: tests/mixed_worker.c $(LIB_A) \
		include/pagemesh/pagemesh.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ tests/mixed_worker.c $(LIB_A) $(LDFLAGS) \
		$(CORE_LIBS)

$(B)/tests/mixed_test: tests/mixed_test.c tests/cluster.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ tests/mixed_test.c $(LDFLAGS) -lcmocka

TEST_BINS += $(B)/tests/mixed_worker $(B)/tests/mixed_test
TESTS += test-mixed
test-mixed: $(B)/tests/mixed_test $(B)/tests/mixed_worker $(BIN) plugins
	$(RUN) 300 $(B)/tests/mixed_test
