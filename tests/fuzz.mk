# libFuzzer (clang) targets over what arrives from the network or a file:
#   frame  the stream wire-frame decoder and the tcp plugin's receive buffer
#   proto  the coherence-message validation every request passes
#   cfg    the config loader
#   coord  the coordinator's JSON handlers (tests/coord_fuzz.c, coord.mk)
# `make fuzz [FUZZ_SECONDS=N]` runs each for N s (default 60) and keeps what
# it finds in $(B)/fuzz/NAME-corpus; `make test` runs each FUZZ_TEST_SECONDS
# (10) from its checked-in seeds in tests/fuzz/corpus/NAME. A crash stops
# the run with the input in $(B)/fuzz/NAME-crash-*: fix it, and add that
# input to tests/fuzz/corpus/NAME so it stays fixed.
FUZZ_TEST_SECONDS ?= 10
FUZZ_NAMES := frame proto cfg

FUZZ_CC = clang -std=gnu11 -g -O1 -D_GNU_SOURCE -Iinclude $(CORE_INC) \
	-DPM_VERSION='"$(VERSION)"' -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=undefined

FUZZ_SRCS_frame := tests/fuzz/frame_fuzz.c plugins/tcp/rx.c
FUZZ_FLAGS_frame := -Iplugins/common -Iplugins/tcp
FUZZ_SRCS_proto := tests/fuzz/proto_fuzz.c core/node/proto.c
FUZZ_SRCS_cfg := tests/fuzz/cfg_fuzz.c core/cfg.c core/cfg_check.c \
	core/cfg_keys.c core/log.c core/plugin_dir.c
FUZZ_LIBS_cfg = $(shell pkg-config --libs libconfig)

# One libFuzzer run: $(1) name, $(2) binary, $(3) seconds, $(4) extra flags.
fuzz_run = @mkdir -p $(B)/fuzz/$(1)-corpus && \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/fuzz/lsan.supp \
	$(RUN) $$(( $(3) + 120 )) $(2) -max_total_time=$(3) -timeout=10 \
		-print_final_stats=1 -artifact_prefix=$(B)/fuzz/$(1)- $(4) \
		$(B)/fuzz/$(1)-corpus tests/fuzz/corpus/$(1)

define fuzz_rules
$(B)/fuzz/$(1)_fuzz: $$(FUZZ_SRCS_$(1)) $(CORE_HDRS) plugins/common/frame.h \
		plugins/tcp/tt.h
	@mkdir -p $$(@D)
	$$(if $$(Q),@echo "  FUZZ    $$@")
	$$(Q)$$(FUZZ_CC) $$(FUZZ_FLAGS_$(1)) $(CORE_CFLAGS) -o $$@ \
		$$(FUZZ_SRCS_$(1)) $$(FUZZ_LIBS_$(1))

TEST_BINS += $(B)/fuzz/$(1)_fuzz
TESTS += test-fuzz-$(1)
fuzz-$(1): $(B)/fuzz/$(1)_fuzz
	$$(call fuzz_run,$(1),$(B)/fuzz/$(1)_fuzz,$$(FUZZ_SECONDS))
test-fuzz-$(1): $(B)/fuzz/$(1)_fuzz
	$$(call fuzz_run,$(1),$(B)/fuzz/$(1)_fuzz,$$(FUZZ_TEST_SECONDS))
.PHONY: fuzz-$(1) test-fuzz-$(1)
endef
$(foreach f,$(FUZZ_NAMES),$(eval $(call fuzz_rules,$(f))))

# The coordinator's target (built by coord.mk) from the checked-in seeds.
TEST_BINS += $(B)/fuzz/coord_fuzz
TESTS += test-fuzz-coord
test-fuzz-coord: $(B)/fuzz/coord_fuzz
	$(call fuzz_run,coord,$(B)/fuzz/coord_fuzz,$(FUZZ_TEST_SECONDS),-max_len=70000)
.PHONY: test-fuzz-coord

fuzz: $(addprefix fuzz-,$(FUZZ_NAMES))
