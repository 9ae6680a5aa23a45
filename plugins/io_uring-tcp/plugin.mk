# io_uring-tcp transport: TCP driven through io_uring (liburing >= 2.3).
PKGS_io_uring-tcp := liburing

# Its own tests (interop with the tcp plugin, io_uring specifics); the
# shared conformance suite runs against it as against every plugin.
ifeq ($(shell pkg-config --exists liburing && echo y),y)
$(B)/tests/ut_test: plugins/io_uring-tcp/test/ut_test.c $(LIB_A) \
		$(CORE_HDRS) $(wildcard plugins/common/*.h)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(CORE_CFLAGS) -Iplugins/common -o $@ $< \
		$(LIB_A) $(LDFLAGS) $(CORE_LIBS) -lcmocka

TEST_BINS += $(B)/tests/ut_test
TESTS += test-io_uring-tcp

test-io_uring-tcp: $(B)/tests/ut_test $(B)/plugins/io_uring-tcp.so
	$(RUN) 120 $(B)/tests/ut_test
endif
