# RDMA transport (soft-RoCE or real hardware): verbs + rdma_cm.
PKGS_rdma := libibverbs librdmacm
# librdmacm keeps process-wide state (device contexts opened on first use)
# that it never frees; unloading it with the plugin would leak that state.
# Like rdma-core's own providers, the plugin stays mapped after dlclose().
LIBS_rdma := -Wl,-z,nodelete

# The plugin's own device tests (plugins/rdma/tests/, kept out of the .so's
# sources). Without an RDMA device they skip with the probe's reason; the
# QEMU guest suite tests/guest/suites/rdma.sh runs them on soft-RoCE.
RDMA_TEST_PKGS := libibverbs librdmacm cmocka
ifeq ($(shell pkg-config --exists $(RDMA_TEST_PKGS) && echo y),y)
$(B)/tests/rdma_test: plugins/rdma/tests/rdma_test.c plugins/rdma/rv_addr.c \
		plugins/rdma/rv.h include/pagemesh/transport.h \
		plugins/common/frame.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -Iplugins/common -o $@ $< plugins/rdma/rv_addr.c \
		$(LDFLAGS) $(shell pkg-config --libs $(RDMA_TEST_PKGS)) -ldl

TEST_BINS += $(B)/tests/rdma_test
TESTS += test-rdma

test-rdma: $(B)/tests/rdma_test $(B)/plugins/rdma.so
	$(RUN) 180 $(B)/tests/rdma_test $(B)/plugins/rdma.so
endif
