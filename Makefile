# pagemesh: pooled RAM over userfaultfd. `make` builds the binary, the core
# library and every transport plugin whose libraries are present.
#
# Parts add themselves through fragments, so a new plugin or test needs no
# edit here:
#   plugins/NAME/plugin.mk  PKGS_NAME := pkg-config modules the plugin needs
#                           (missing modules skip the plugin with a notice)
#   tests/*.mk, bench/*.mk  rules for their programs; append run targets to
#                           TESTS / BENCHES and programs to TEST_BINS /
#                           BENCH_BINS.

VERSION := 0.1.0

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PLUGINDIR ?= $(LIBDIR)/pagemesh/plugins
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=

# Build folder: `make asan` uses build-asan so both can coexist.
B ?= build

CFLAGS ?= -O2 -g
# The core's rooms: core/ (config, loader, log, metrics, auth, CLI),
# core/node/ (pager, coherence, eviction, protocol), core/coord/ (the
# coordinator client and server), core/vmm/ (the VMM).
CORE_DIRS := core core/node core/coord core/vmm
CORE_INC := $(addprefix -I,$(CORE_DIRS))
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -pthread -fPIC \
	-D_GNU_SOURCE -Iinclude $(CORE_INC) -DPM_VERSION='"$(VERSION)"'
LDFLAGS ?=
# PM_DEBUG=1: the engine's own checks (core/node/check.c: lock order,
# legal page-state transitions, the right lock held); `make asan` has them.
ifeq ($(PM_DEBUG),1)
override CFLAGS += -DPM_DEBUG
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

# Debian packages `make deps` installs when missing.
DEB_PKGS := pkg-config libconfig-dev libcjson-dev libcurl4-openssl-dev \
	libcmocka-dev liburing-dev libibverbs-dev librdmacm-dev \
	libmicrohttpd-dev libssl-dev libsystemd-dev etcd-server gnuplot-nox \
	iproute2 nftables curl clang libclang-rt-14-dev \
	qemu-system-x86 busybox-static cpio kmod

CORE_PKGS := libconfig libcjson libcurl libmicrohttpd libcrypto
# Readiness notification for systemd (core/notify.c); without it the units'
# Type=notify cannot work, so say so.
ifeq ($(shell pkg-config --exists libsystemd && echo y),y)
CORE_PKGS += libsystemd
override CFLAGS += -DPM_HAVE_SYSTEMD
else
$(info notice: libsystemd not found (run `make deps`): no sd_notify readiness; etc/*.service need Type=simple)
endif
CORE_CFLAGS := $(shell pkg-config --cflags $(CORE_PKGS) 2>/dev/null)
CORE_LIBS := $(shell pkg-config --libs $(CORE_PKGS) 2>/dev/null) -ldl -lpthread

CORE_SRCS := $(filter-out core/main.c,$(wildcard $(addsuffix /*.c,$(CORE_DIRS))))
CORE_OBJS := $(patsubst core/%.c,$(B)/core/%.o,$(CORE_SRCS))
CORE_HDRS := $(wildcard $(addsuffix /*.h,$(CORE_DIRS)) include/pagemesh/*.h)

LIB_A := $(B)/libpagemesh.a
LIB_SO := $(B)/libpagemesh.so
LIB_SONAME := libpagemesh.so.0
BIN := $(B)/pagemesh

TESTS :=
TEST_BINS :=
BENCHES :=
BENCH_BINS :=
PLUGIN_SOS :=

.PHONY: all deps test check tests demo bench asan install uninstall \
	abi-check clean fuzz help FORCE

all: $(BIN) $(LIB_A) $(LIB_SO) $(B)/$(LIB_SONAME) plugins

# The folders compiled in (core/plugin_dir.c): PLUGINDIR, and the build
# folder, whose own plugins/ code running from it uses instead. Rewritten
# only when they change, so `make install PREFIX=...` rebuilds just what
# embeds them.
$(B)/core/paths.h: FORCE
	@mkdir -p $(@D)
	@printf '#define PM_PLUGINDIR "%s"\n#define PM_BUILD_DIR "%s"\n' \
		'$(PLUGINDIR)' '$(abspath $(B))' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; fi

$(B)/core/plugin_dir.o: $(B)/core/paths.h
$(B)/core/plugin_dir.o: override CFLAGS += -I$(B)/core

$(B)/core/%.o: core/%.c $(CORE_HDRS)
	@mkdir -p $(@D)
	$(if $(Q),@echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $(CORE_CFLAGS) -c -o $@ $<

$(LIB_A): $(CORE_OBJS)
	$(if $(Q),@echo "  AR      $@")
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(LIB_SO): $(CORE_OBJS)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) -shared -Wl,-soname,$(LIB_SONAME) -o $@ $^ \
		$(LDFLAGS) $(CORE_LIBS)

# What a program linked with -lpagemesh asks the dynamic linker for.
$(B)/$(LIB_SONAME): $(LIB_SO)
	$(Q)ln -sf $(notdir $(LIB_SO)) $@

$(BIN): core/main.c $(LIB_A) $(CORE_HDRS)
	$(if $(Q),@echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(CORE_CFLAGS) -o $@ core/main.c \
		-Wl,--whole-archive $(LIB_A) -Wl,--no-whole-archive \
		$(LDFLAGS) $(CORE_LIBS)

# --- transport plugins ---------------------------------------------------
PLUGINS := $(filter-out common,$(notdir $(patsubst %/,%,$(wildcard plugins/*/))))
-include $(wildcard plugins/*/plugin.mk)

define plugin_rules
ifeq ($$(if $$(PKGS_$(1)),$$(shell pkg-config --exists $$(PKGS_$(1)) && echo y),y),y)
PLUGIN_SOS += $(B)/plugins/$(1).so
$(B)/plugins/$(1).so: $$(wildcard plugins/$(1)/*.c plugins/$(1)/*.h) \
		$$(wildcard plugins/common/*.h) include/pagemesh/transport.h
	@mkdir -p $$(@D)
	$$(if $$(Q),@echo "  PLUGIN  $$@")
	$$(Q)$$(CC) $$(CFLAGS) -fvisibility=hidden -Iplugins/common \
		$$(if $$(PKGS_$(1)),$$(shell pkg-config --cflags $$(PKGS_$(1)))) \
		-shared -o $$@ $$(wildcard plugins/$(1)/*.c) $$(LDFLAGS) \
		$$(if $$(PKGS_$(1)),$$(shell pkg-config --libs $$(PKGS_$(1)))) \
		$$(LIBS_$(1))
else
$$(info notice: transport plugin '$(1)' not built: pkg-config cannot find $$(PKGS_$(1)) (run `make deps`))
endif
endef
$(foreach p,$(PLUGINS),$(eval $(call plugin_rules,$(p))))

plugins: $(PLUGIN_SOS)
.PHONY: plugins

# --- tests, benchmarks -----------------------------------------------------
# A test's run target uses $(RUN) SECONDS: a hard timeout so nothing hangs.
# Tests read the info lines of the programs they start (pagemesh alone
# prints warnings and errors only).
RUN = PM_BUILD=$(B) PM_LOG_LEVEL=$${PM_LOG_LEVEL:-info} timeout -k 10
-include $(wildcard tests/*.mk tests/*/*.mk bench/*.mk)

tests: all $(TEST_BINS)

# Every test runs even when one fails; check fails if any did. Tests run
# TEST_JOBS at a time, each one's output kept together (-O): most of them
# wait on sockets, processes and timeouts rather than on a CPU, and the
# guest suites (QEMU, the longest) start first so the rest run beside them.
TEST_JOBS ?= 2
check:
	@$(MAKE) --no-print-directory -k -j$(TEST_JOBS) -O run-tests || \
		{ echo "make check: some tests FAILED (see above)"; exit 1; }
	@echo "make check: all test programs passed"

run-tests: $(filter test-guest,$(TESTS)) $(filter-out test-guest,$(TESTS))
.PHONY: run-tests $(TESTS) $(BENCHES)

# `make test` and `make demo` install what they need first, then re-read
# this Makefile so pkg-config sees the freshly installed libraries.
test: deps
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) tests
	@$(MAKE) --no-print-directory check

demo: deps
	@$(MAKE) --no-print-directory -j$(TEST_JOBS) all $(B)/tests/demo_app
	@PM_BUILD=$(B) tests/demo.sh

bench: deps
	@$(MAKE) --no-print-directory all $(BENCH_BINS)
	@$(MAKE) --no-print-directory -k run-benches

run-benches: $(BENCHES)
.PHONY: run-benches

asan:
	@$(MAKE) --no-print-directory B=build-asan PM_DEBUG=1 \
		CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" \
		LDFLAGS="-fsanitize=address,undefined" test

deps:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | \
			grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing$$missing"; \
		if [ "$$(id -u)" != 0 ]; then \
			echo "make deps: need root to apt-get install$$missing" >&2; \
			exit 1; \
		fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $$missing; \
	fi

abi-check: $(PLUGIN_SOS)
	@fail=0; for so in $(PLUGIN_SOS); do \
		syms=$$(nm -D --defined-only $$so | awk '{print $$3}' | sort | tr '\n' ' '); \
		if [ "$$syms" = "pagemesh_transport_v1 " ]; then \
			echo "abi-check: $$so exports only pagemesh_transport_v1"; \
		else \
			echo "abi-check: $$so exports: $$syms" >&2; fail=1; \
		fi; \
	done; exit $$fail

# --- install, uninstall -----------------------------------------------------
# Programs installed into BINDIR besides pagemesh; fragments append to it
# (the conformance suite adds pagemesh-conformance).
INSTALL_BINS :=
# The .pc follows PREFIX (paths.h changes with it). Libs.private is what
# `pkg-config --static` adds for libpagemesh.a: the core's libraries
# themselves, linked as shared objects that bring their own dependencies
# (their static closure, Requires.private, needs -dev packages Debian
# ships without .a files).
$(B)/pagemesh.pc: $(B)/core/paths.h Makefile
	@mkdir -p $(@D)
	@printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' \
		'includedir=$(INCLUDEDIR)' 'plugindir=$(PLUGINDIR)' '' \
		'Name: pagemesh' 'Description: pooled RAM over userfaultfd' \
		'Version: $(VERSION)' 'Libs: -L$${libdir} -lpagemesh' \
		'Libs.private: $(strip $(CORE_LIBS))' \
		'Cflags: -I$${includedir}' > $@

# Without DESTDIR the files are live: refresh the dynamic linker's cache so
# that libpagemesh.so.0 is found (needs root; said so otherwise).
LDCONFIG = @if [ "$$(id -u)" = 0 ]; then echo ldconfig; ldconfig; else \
	echo "note: not root, ldconfig not run"; fi

INSTALL_DIRS := $(BINDIR) $(LIBDIR) $(INCLUDEDIR)/pagemesh $(PLUGINDIR) \
	$(PKGCONFIGDIR) $(SYSTEMDUNITDIR)
UNITS := $(notdir $(wildcard etc/*.service))

install: all $(B)/pagemesh.pc $(INSTALL_BINS)
	install -d $(addprefix $(DESTDIR),$(INSTALL_DIRS))
	install -m 755 $(BIN) $(INSTALL_BINS) $(DESTDIR)$(BINDIR)/
	[ ! -x $(B)/tests/conformance ] || install -m 755 $(B)/tests/conformance $(DESTDIR)$(BINDIR)/pagemesh-conformance
	install -m 644 $(LIB_A) $(DESTDIR)$(LIBDIR)/libpagemesh.a
	install -m 755 $(LIB_SO) $(DESTDIR)$(LIBDIR)/libpagemesh.so.$(VERSION)
	ln -sf libpagemesh.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(LIB_SONAME)
	ln -sf $(LIB_SONAME) $(DESTDIR)$(LIBDIR)/libpagemesh.so
	install -m 644 include/pagemesh/*.h $(DESTDIR)$(INCLUDEDIR)/pagemesh/
	$(if $(PLUGIN_SOS),install -m 755 $(PLUGIN_SOS) $(DESTDIR)$(PLUGINDIR)/)
	install -m 644 $(B)/pagemesh.pc $(DESTDIR)$(PKGCONFIGDIR)/pagemesh.pc
	for u in $(UNITS); do \
		sed 's|/usr/local/bin/|$(BINDIR)/|g' etc/$$u > \
			$(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
		chmod 644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
		mv $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp \
			$(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; \
	done
	$(if $(DESTDIR),,$(LDCONFIG))

# Removes what install puts there (every plugin of the tree, built or not),
# pagemesh's own folders, and the standard ones when that leaves them empty.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pagemesh \
		$(DESTDIR)$(BINDIR)/pagemesh-conformance \
		$(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(INSTALL_BINS))) \
		$(addprefix $(DESTDIR)$(LIBDIR)/,libpagemesh.a libpagemesh.so \
			$(LIB_SONAME) libpagemesh.so.$(VERSION)) \
		$(addprefix $(DESTDIR)$(INCLUDEDIR)/pagemesh/,$(notdir \
			$(wildcard include/pagemesh/*.h))) \
		$(addprefix $(DESTDIR)$(PLUGINDIR)/,$(addsuffix .so,$(PLUGINS))) \
		$(DESTDIR)$(PKGCONFIGDIR)/pagemesh.pc \
		$(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(UNITS))
	@for d in $(DESTDIR)$(INCLUDEDIR)/pagemesh $(DESTDIR)$(PLUGINDIR) \
		$(DESTDIR)$(LIBDIR)/pagemesh $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(dir $(DESTDIR)$(SYSTEMDUNITDIR)) \
		$(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) \
		$(DESTDIR)$(INCLUDEDIR); do \
		[ ! -d "$$d" ] || rmdir --ignore-fail-on-non-empty "$$d"; \
	done
	$(if $(DESTDIR),,$(LDCONFIG))

clean:
	rm -rf build build-asan

help:
	@echo "make            build $(BIN), libpagemesh, plugins"
	@echo "make test       install deps, build, run every test"
	@echo "make demo       run a 3-node cluster doing real work"
	@echo "make bench      benchmarks with same-run baselines"
	@echo "make asan       build and test with ASan+UBSan and PM_DEBUG (build-asan/)"
	@echo "make install    PREFIX=$(PREFIX) DESTDIR=... (PLUGINDIR=$(PLUGINDIR))"
	@echo "make uninstall  remove what make install put there"
	@echo "make abi-check  each plugin exports only its entry symbol"
	@echo "make deps       apt-get install missing build/test packages"
