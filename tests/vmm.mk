# VMM tests. vmm_test needs no KVM (bounds, devices, boot layout, CLI exit
# codes); vmm_fill is the static program the guest suite runs inside the
# nested Linux guest, built without sanitizers since it runs there alone;
# vmm_peer is the other node of the suite's two-node VMs.
$(B)/tests/vmm_test: tests/vmm_test.c $(LIB_A) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(CORE_CFLAGS) -o $@ tests/vmm_test.c $(LIB_A) \
		$(LDFLAGS) $(CORE_LIBS) -lcmocka

# The second node of the guest suite's two-node VM tests.
$(B)/tests/vmm_peer: tests/vmm_peer.c $(LIB_A) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(CORE_CFLAGS) -o $@ tests/vmm_peer.c $(LIB_A) \
		$(LDFLAGS) $(CORE_LIBS)

$(B)/tests/vmm_fill: tests/vmm_fill.c
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) -O2 -std=gnu11 -Wall -Wextra -Werror -static -o $@ $<

TEST_BINS += $(B)/tests/vmm_test $(B)/tests/vmm_fill $(B)/tests/vmm_peer
TESTS += test-vmm

test-vmm: $(B)/tests/vmm_test $(BIN)
	$(RUN) 120 $(B)/tests/vmm_test
