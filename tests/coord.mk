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

# libFuzzer (clang) over what the coordinator code reads from the network:
# `make fuzz-coord [FUZZ_SECONDS=N]`; `make test` runs it briefly from
# tests/fuzz/corpus/coord (tests/fuzz.mk).
FUZZ_SECONDS ?= 60
COORD_FUZZ_SRCS := tests/coord_fuzz.c core/coord/coord_server.c \
	core/coord/coord_api.c core/coord/coord_json.c \
	core/coord/coord_nonce.c core/coord/coord_probe.c \
	core/coord/coord_client.c core/coord/coord_http.c \
	core/coord/coord_etcd.c core/http.c \
	core/auth.c core/log.c core/cfg.c core/cfg_check.c core/cfg_keys.c \
	core/plugin_dir.c

$(B)/fuzz/coord_fuzz: $(COORD_FUZZ_SRCS) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  FUZZ    $@")
	$(Q)clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude $(CORE_INC) \
		-DPM_VERSION='"$(VERSION)"' -fsanitize=fuzzer,address,undefined \
		$(CORE_CFLAGS) -o $@ $(COORD_FUZZ_SRCS) $(CORE_LIBS)

# Seeds: one valid input per decoder, so the fuzzer starts from the shapes.
fuzz-coord: $(B)/fuzz/coord_fuzz
	@mkdir -p $(B)/fuzz/coord-corpus
	@printf '\000\000{"name":"c","nodes":3,"memory_mb":64}' \
		> $(B)/fuzz/coord-corpus/seed-cluster
	@printf '\000\021{"transport_type":"rdma","endpoint":"x","rdma_qpn":1,"rdma_lid":2,"rdma_gid":"fe80","rdma_psn":3,"tcp_addr":"h","tcp_port":9}' \
		> $(B)/fuzz/coord-corpus/seed-endpoint
	@printf '\001{"endpoints":{"0":{"transports":[{"transport_type":"tcp","endpoint":"h:1"}]}},"version":5}' \
		> $(B)/fuzz/coord-corpus/seed-members
	@printf '\002{"header":{"revision":"7"},"kvs":[{"key":"L3BhZ2VtZXNoL2Yvbm9kZXMvMS90Y3A=","value":"eyJub2RlX2lkIjoxLCJ0cmFuc3BvcnRfdHlwZSI6InRjcCIsImVuZHBvaW50IjoiaDoxIn0="}]}' \
		> $(B)/fuzz/coord-corpus/seed-etcd
	@printf '\003-9223372036854775808:0123456789abcdef0123456789abcdef:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef' \
		> $(B)/fuzz/coord-corpus/seed-auth
	$(RUN) $$(( $(FUZZ_SECONDS) + 120 )) $(B)/fuzz/coord_fuzz \
		-max_total_time=$(FUZZ_SECONDS) -timeout=30 -max_len=70000 \
		$(B)/fuzz/coord-corpus

fuzz: fuzz-coord
.PHONY: fuzz-coord
