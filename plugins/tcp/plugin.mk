# tcp transport: plain sockets, no library beyond libc.
PKGS_tcp :=

# Its own tests (wire splitting, slow readers, reply/drop races, settings,
# endpoint parsing); the shared conformance suite runs against it too.
# One feature to a file in plugins/tcp/test/ (outside the plugin's sources:
# the .so takes plugins/tcp/*.c only).
TT_TEST_SRCS := $(wildcard plugins/tcp/test/*.c)
$(B)/tests/tt_test: $(TT_TEST_SRCS) plugins/tcp/test/tt_test.h \
		$(wildcard plugins/common/*.h) include/pagemesh/transport.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -Iplugins/common -o $@ $(TT_TEST_SRCS) $(LDFLAGS) \
		-ldl -lcmocka

TEST_BINS += $(B)/tests/tt_test
TESTS += test-tcp

test-tcp: $(B)/tests/tt_test $(B)/plugins/tcp.so
	$(RUN) 120 $(B)/tests/tt_test
