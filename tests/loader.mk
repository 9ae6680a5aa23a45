# Loader negative tests: deliberately broken plugins (tests/bad_plugins/,
# built against include/pagemesh/transport.h only) and the loader_test
# program that checks each is rejected with the file and the reason.
BAD_PLUGIN_SOS := $(patsubst tests/bad_plugins/%.c,$(B)/tests/bad_plugins/%.so,\
	$(wildcard tests/bad_plugins/*.c)) $(B)/tests/bad_plugins/not_elf.so

$(B)/tests/bad_plugins/%.so: tests/bad_plugins/%.c tests/bad_plugins/stub.h \
		include/pagemesh/transport.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  PLUGIN  $@")
	$(Q)$(CC) $(CFLAGS) -fvisibility=hidden -shared -o $@ $< $(LDFLAGS)

# Named like a plugin, but text: dlopen must fail and say so.
$(B)/tests/bad_plugins/not_elf.so:
	@mkdir -p $(@D)
	$(Q)printf '%s\n' 'this is not an ELF shared object' > $@

$(B)/tests/loader_test: tests/loader_test.c $(LIB_A) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(CORE_CFLAGS) -o $@ tests/loader_test.c $(LIB_A) \
		$(LDFLAGS) $(CORE_LIBS) -lcmocka

TEST_BINS += $(B)/tests/loader_test $(BAD_PLUGIN_SOS)
TESTS += test-loader

test-loader: $(B)/tests/loader_test $(BAD_PLUGIN_SOS) $(BIN)
	$(RUN) 60 $(B)/tests/loader_test
