# The transport writer's kit: the example out-of-tree transport
# (examples/transport-unix), built the way the README tells a third party
# to build one (against include/ here instead of the installed headers,
# and with -Werror), checked by the conformance suite; its broken builds,
# which the suite must fail (kit_test). Not a production transport: it is
# not in PLUGIN_SOS, not installed and in no transports.order.
KIT_DIR := $(B)/examples/transport-unix
KIT_SRC := examples/transport-unix/unix.c
# `make asan` sanitizes the example too.
KIT_CC = $(CC) -std=gnu11 -Wall -Wextra -Werror -shared -fPIC \
	-fvisibility=hidden -O2 -pthread -Iinclude \
	$(filter -fsanitize=% -fno-sanitize-recover=%,$(CFLAGS))
KIT_SOS := $(KIT_DIR)/unix.so $(KIT_DIR)/unix_twice.so \
	$(KIT_DIR)/unix_late.so $(KIT_DIR)/unix_nolisten.so \
	$(KIT_DIR)/unix_silent.so

$(KIT_DIR)/unix.so: $(KIT_SRC) include/pagemesh/transport.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  PLUGIN  $@")
	$(Q)$(KIT_CC) -o $@ $<
$(KIT_DIR)/unix_twice.so: $(KIT_SRC) include/pagemesh/transport.h
	@mkdir -p $(@D)
	$(Q)$(KIT_CC) -DUX_BROKEN_TWICE -o $@ $<
$(KIT_DIR)/unix_late.so: $(KIT_SRC) include/pagemesh/transport.h
	@mkdir -p $(@D)
	$(Q)$(KIT_CC) -DUX_BROKEN_LATE -o $@ $<
$(KIT_DIR)/unix_nolisten.so: $(KIT_SRC) include/pagemesh/transport.h
	@mkdir -p $(@D)
	$(Q)$(KIT_CC) -DUX_NO_ANY_LISTEN -Wno-unused-function -o $@ $<
$(KIT_DIR)/unix_silent.so: $(KIT_SRC) include/pagemesh/transport.h
	@mkdir -p $(@D)
	$(Q)$(KIT_CC) -DUX_BROKEN_SILENT -o $@ $<

$(B)/tests/kit_test: tests/kit_test.c include/pagemesh/transport.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS) -lcmocka

TEST_BINS += $(KIT_SOS) $(B)/tests/kit_test
TESTS += conformance-unix test-kit

conformance-unix: $(B)/tests/conformance $(KIT_DIR)/unix.so
	$(RUN) 120 $(B)/tests/conformance $(KIT_DIR)/unix.so

# A staged install (DESTDIR) for kit_test's out-of-tree build.
KIT_ROOT := $(abspath $(B)/kit-install)
# With the tree's own PREFIX: another one would change core/paths.h and
# relink the build tree under the tests running beside this one.
test-kit: $(B)/tests/kit_test $(B)/tests/conformance $(KIT_SOS) all
	@rm -rf $(KIT_ROOT)
	@$(MAKE) --no-print-directory install DESTDIR=$(KIT_ROOT) \
		>/dev/null
	PM_KIT_ROOT=$(KIT_ROOT) PM_KIT_PREFIX=$(PREFIX) $(RUN) 600 \
		$(B)/tests/kit_test; r=$$?; rm -rf $(KIT_ROOT); exit $$r

# Three nodes over the example transport, keyless (host-local endpoints).
$(B)/tests/kit_cluster_test: tests/kit_cluster_test.c tests/cluster.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -o $@ tests/kit_cluster_test.c $(LDFLAGS) -lcmocka

TEST_BINS += $(B)/tests/kit_cluster_test
TESTS += test-kit-cluster
test-kit-cluster: $(B)/tests/kit_cluster_test $(B)/tests/coh_worker \
		$(KIT_DIR)/unix.so
	$(RUN) 300 $(B)/tests/kit_cluster_test
