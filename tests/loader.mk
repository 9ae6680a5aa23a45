# Loader negative tests: deliberately broken plugins (tests/bad_plugins/,
# built against include/pagemesh/transport.h only) and the loader_test
# program that checks each is rejected with the file and the reason.
BAD_PLUGIN_SOS := $(patsubst tests/bad_plugins/%.c,$(B)/tests/bad_plugins/%.so,\
	$(wildcard tests/bad_plugins/*.c)) $(B)/tests/bad_plugins/not_elf.so \
	$(B)/tests/bad_plugins/truncated.so \
	$(B)/tests/bad_plugins/truncated_noshdr.so \
	$(B)/tests/bad_plugins/wrong_machine.so

$(B)/tests/bad_plugins/%.so: tests/bad_plugins/%.c tests/bad_plugins/stub.h \
		include/pagemesh/transport.h
	@mkdir -p $(@D)
	$(if $(Q),@echo "  PLUGIN  $@")
	$(Q)$(CC) $(CFLAGS) -fvisibility=hidden -shared -o $@ $< $(LDFLAGS)

# Named like a plugin, but text: dlopen must fail and say so.
$(B)/tests/bad_plugins/not_elf.so:
	@mkdir -p $(@D)
	$(Q)printf '%s\n' 'this is not an ELF shared object' > $@

# The first 4 KiB of a real plugin, as an interrupted copy leaves it: its
# headers are sane, its section headers and segments lie past the end, and
# dlopen would map them and die of SIGBUS. The loader must refuse it first.
$(B)/tests/bad_plugins/truncated.so: $(B)/plugins/tcp.so
	@mkdir -p $(@D)
	$(if $(Q),@echo "  GEN     $@")
	$(Q)head -c 4096 $< > $@.tmp && mv $@.tmp $@

# The same cut, with the section header table unnamed (e_shoff, e_shnum
# and e_shstrndx zeroed, as a stripped-down loader-only file may have
# them): only the segments' extents show it is short.
$(B)/tests/bad_plugins/truncated_noshdr.so: $(B)/tests/bad_plugins/truncated.so
	$(if $(Q),@echo "  GEN     $@")
	$(Q)cp $< $@.tmp && \
		printf '\000\000\000\000\000\000\000\000' | \
		dd of=$@.tmp bs=1 seek=40 conv=notrunc status=none && \
		printf '\000\000\000\000' | \
		dd of=$@.tmp bs=1 seek=60 conv=notrunc status=none && \
		mv $@.tmp $@

# A real plugin whose ELF header names another machine (e_machine, the
# 2 bytes at offset 18, little-endian): aarch64, or x86-64 on aarch64.
WRONG_EM := $(if $(filter aarch64 arm64,$(shell uname -m)),\076\000,\267\000)
$(B)/tests/bad_plugins/wrong_machine.so: $(B)/plugins/tcp.so
	@mkdir -p $(@D)
	$(if $(Q),@echo "  GEN     $@")
	$(Q)cp $< $@.tmp && printf '$(WRONG_EM)' | \
		dd of=$@.tmp bs=1 seek=18 conv=notrunc status=none && \
		mv $@.tmp $@

$(B)/tests/loader_test: tests/loader_test.c $(LIB_A) $(CORE_HDRS)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(CORE_CFLAGS) -o $@ tests/loader_test.c $(LIB_A) \
		$(LDFLAGS) $(CORE_LIBS) -lcmocka

TEST_BINS += $(B)/tests/loader_test $(BAD_PLUGIN_SOS)
TESTS += test-loader

test-loader: $(B)/tests/loader_test $(BAD_PLUGIN_SOS) $(BIN)
	$(RUN) 60 $(B)/tests/loader_test
