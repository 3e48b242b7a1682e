# cellblock: one non-recursive Makefile for the daemon, the CLI, the shim
# and their tests. `make` builds bin/; `make test` runs every test.

PYTHON	?= /usr/bin/python3
CC	?= cc
PKGS	 = libczmq libzmq jansson libsodium nettle libseccomp libmicrohttpd gnutls
VERSION	 = 0.1.0
PYVER	:= $(shell $(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null)

WARN	 = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wpointer-arith -Wformat=2 -Wno-format-nonliteral
ifneq ($(CI),)
WARN	+= -Werror
endif
CFLAGS	?= -O2 -g
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(CPPFLAGS) $(CFLAGS) -MMD -MP \
	   -Ikernel-shim/base -Iprotocol -Isessions -Iserver -Ikernel-shim \
	   -DCELLBLOCK_VERSION='"$(VERSION)"' -DCELLBLOCK_PYVER='"$(PYVER)"' \
	   $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS	 = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lwslay -lpthread -lm

# Sources: each directory is a library; the programs pick what they need.
# kernel-shim/base/ is the floor under all of them (docs/ARCHITECTURE.md).
BASE_SRC	= $(filter-out kernel-shim/base/test-%.c,$(wildcard kernel-shim/base/*.c))
PROTO_SRC	= $(filter-out protocol/test-%.c,$(wildcard protocol/*.c))
SESS_SRC	= $(filter-out sessions/test-%.c,$(wildcard sessions/*.c))
# The daemon is server/*.c; the CLI is server/cli/*.c and shares with it
# only the connection files (server/shared.h).
DAEMON_SRC	= $(filter-out server/test-%.c,$(wildcard server/*.c))
CLI_SRC		= $(wildcard server/cli/*.c) server/connfile.c
# The egress proxy, its own program (server/egress/, docs/SECURITY.md); the
# daemon links only its policy parser.
EGRESS_POLICY	= server/egress/egress-policy.c
EGRESS_SRC	= server/egress/egress-proxy.c $(EGRESS_POLICY)
DAEMON_SRC	+= $(EGRESS_POLICY)
SHIM_SRC	= $(filter-out kernel-shim/test-%.c kernel-shim/zygote-child.c \
		    kernel-shim/cellblock-init.c,$(wildcard kernel-shim/*.c))
# Pid 1 of every session (kernel-shim/cellblock-init.c): static, so its
# exec maps one file and no loader.
INIT_SRC	= kernel-shim/cellblock-init.c kernel-shim/sandbox-pid.c
# The zygote's C half: a shared object Python loads (docs/ZYGOTE.md); it
# links no ZeroMQ.
# The sandbox steps, one file per facility (sandbox.h), run by sandbox-run.c.
SANDBOX_STEPS	= kernel-shim/sandbox-mount.c kernel-shim/sandbox-user.c \
		  kernel-shim/sandbox-net.c \
		  kernel-shim/sandbox-uts.c kernel-shim/sandbox-caps.c \
		  kernel-shim/sandbox-rlimits.c kernel-shim/sandbox-proc.c \
		  kernel-shim/sandbox-pid.c
ZYGOTE_SRC	= kernel-shim/zygote-child.c kernel-shim/sandbox-run.c \
		  $(SANDBOX_STEPS) kernel-shim/sandbox-seccomp.c

# Where objects and programs go; `make asan` builds into other directories.
BUILDDIR = build
BINDIR	 = bin
obj = $(patsubst %.c,$(BUILDDIR)/%.o,$(1))

BINS	= $(BINDIR)/cellblockd $(BINDIR)/cellblock $(BINDIR)/cellblock-shim \
	  $(BINDIR)/cellblock-zygote.so $(BINDIR)/cellblock-egress \
	  $(BINDIR)/cellblock-init
TESTBINS = $(BINDIR)/test-protocol $(BINDIR)/test-base $(BINDIR)/test-redact \
	   $(BINDIR)/test-zmtp $(BINDIR)/test-egress $(BINDIR)/test-child \
	   $(if $(wildcard sessions/test-cgroup.c),$(BINDIR)/test-cgroup) \
	   $(if $(wildcard tests/sandbox/try-syscall.c),$(BINDIR)/try-syscall) \
	   $(if $(wildcard tests/sandbox/seccomp-check.c),$(BINDIR)/seccomp-check) \
	   $(if $(wildcard tests/sandbox/sandbox-check.c),$(BINDIR)/sandbox-check)
# The fuzz harnesses' replay drivers: the corpus and crashes as tests (Fuzzing below).
FUZZ_TARGETS = jmsg control channel config zmtp rest http ws
TESTBINS += $(patsubst %,$(BINDIR)/fuzz-replay-%,$(FUZZ_TARGETS))

all: $(BINS) $(TESTBINS)

# What an installation needs, without the test programs (debian/rules).
programs: $(BINS)

# The daemon writes a session's id maps with the user facility's parent
# half, the one sandbox-check tests (docs/ARCHITECTURE.md).
SANDBOX_PARENT	= kernel-shim/sandbox-user.c
$(BINDIR)/cellblockd: $(call obj,$(DAEMON_SRC) $(PROTO_SRC) $(SESS_SRC) $(BASE_SRC) \
	    $(SANDBOX_PARENT))
$(BINDIR)/cellblock: $(call obj,$(CLI_SRC) $(PROTO_SRC) $(BASE_SRC))
$(BINDIR)/cellblock-shim: $(call obj,$(SHIM_SRC) $(BASE_SRC))
$(BINDIR)/cellblock-init: $(call obj,$(INIT_SRC))
	@mkdir -p $(dir $@)
	$(CC) -static $(LDFLAGS) -o $@ $^
$(BINDIR)/test-base: $(call obj,kernel-shim/base/test-base.c $(BASE_SRC))
$(BINDIR)/test-protocol: $(call obj,protocol/test-protocol.c $(PROTO_SRC) $(BASE_SRC))
$(BINDIR)/test-zmtp: $(call obj,protocol/test-zmtp.c $(PROTO_SRC) $(BASE_SRC))
$(BINDIR)/test-cgroup: $(call obj,sessions/test-cgroup.c sessions/cgroup.c $(BASE_SRC))
$(BINDIR)/test-redact: $(call obj,server/test-redact.c server/redact.c $(BASE_SRC))
$(BINDIR)/test-child: $(call obj,server/test-child.c server/child.c server/loop.c \
	    $(BASE_SRC))
$(BINDIR)/cellblock-egress: $(call obj,$(EGRESS_SRC) $(BASE_SRC))
$(BINDIR)/test-egress: $(call obj,server/egress/test-egress.c $(EGRESS_POLICY) \
	    $(BASE_SRC))
$(BINDIR)/try-syscall: $(call obj,tests/sandbox/try-syscall.c)
$(BINDIR)/seccomp-check: $(call obj,tests/sandbox/seccomp-check.c kernel-shim/sandbox-seccomp.c)
$(BINDIR)/sandbox-check: $(call obj,tests/sandbox/sandbox-check.c $(SANDBOX_STEPS) $(BASE_SRC))

$(BINDIR)/cellblock-zygote.so: $(patsubst %.c,$(BUILDDIR)/pic/%.o,$(ZYGOTE_SRC))
	@mkdir -p $(dir $@)
	$(CC) -shared -Wl,-z,defs $(LDFLAGS) -o $@ $^ \
	    $(shell pkg-config --libs jansson libseccomp 2>/dev/null)

$(BUILDDIR)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(BINDIR)/%:
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

$(BUILDDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

-include $(shell find $(BUILDDIR) -name '*.d' 2>/dev/null)

# deps installs only the Debian packages that are missing.
deps:
	@sh tests/deps.sh

run: deps all
	@mkdir -p var
	./bin/cellblockd --foreground --state-dir "$(CURDIR)/var"

test: deps all
	@sh tests/run.sh

# Benchmarks against ipykernel; never part of `make test` (docs/BENCHMARKS.md).
bench: deps all
	$(PYTHON) tests/bench/bench.py $(BENCHFLAGS)
	$(PYTHON) tests/bench/mcp_bench.py $(if $(filter --quick,$(BENCHFLAGS)),--quick)
	$(PYTHON) tests/bench/egress_bench.py
	$(PYTHON) tests/bench/rest_bench.py $(RESTBENCHFLAGS)
	$(PYTHON) tests/bench/contract_bench.py
	$(PYTHON) tests/bench/gateway_bench.py
	$(PYTHON) tests/bench/pool_bench.py
	$(PYTHON) tests/bench/flood_bench.py
	$(PYTHON) tests/bench/density_bench.py
	$(PYTHON) tests/bench/runner_bench.py --write --base f3972bc0123a

# The message hot path alone (issue 11): executes/s over 50 sessions and
# the daemon's CPU and instructions per execute; HOTPATHFLAGS may name
# other builds to compare (tests/bench/hotpath.py).
bench-hotpath: all
	$(PYTHON) tests/bench/hotpath.py --callgrind 200 --write tests/bench/hotpath.md \
	    $(HOTPATHFLAGS)

# 100 sessions under a mixed load for SOAKTIME seconds, then checks for
# crashes, leaks and lost state; never part of `make test` (docs/TESTING.md).
SOAKTIME ?= 600
soak: deps all
	$(PYTHON) tests/soak/soak.py --time $(SOAKTIME)

.PHONY: soak

# The daemon, the CLI and the unit programs with ASan and UBSan in bin-asan/
# (objects in build-asan/), never touching bin/; then the whole suite against
# them (docs/TESTING.md). What runs inside the sandbox stays unsanitized:
# ASan's runtime calls setrlimit, which the seccomp policy denies, and the
# policy is not loosened for a test build. clang, not gcc: with gcc's
# separate libubsan, UBSan reports ignore log_path and go to stderr.
ASAN_CC	   = clang
ASAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer \
	     -fno-sanitize-recover=undefined
ASAN_PLAIN = cellblock-shim cellblock-zygote.so cellblock-init try-syscall
ASAN_ALL = $(notdir $(BINS) $(TESTBINS))

asan-build:
	@$(MAKE) --no-print-directory BUILDDIR=build-asan/plain BINDIR=bin-asan \
	    $(addprefix bin-asan/,$(filter $(ASAN_PLAIN),$(ASAN_ALL)))
	@$(MAKE) --no-print-directory BUILDDIR=build-asan/san BINDIR=bin-asan \
	    CC=$(ASAN_CC) CFLAGS="-O1 -g $(ASAN_FLAGS)" LDFLAGS="$(ASAN_FLAGS)" \
	    $(addprefix bin-asan/,$(filter-out $(ASAN_PLAIN),$(ASAN_ALL)))

asan: deps
	@$(MAKE) --no-print-directory asan-build
	@sh tests/asan.sh

# --- Fuzzing (docs/TESTING.md) ---------------------------------------------
# libFuzzer harnesses (tests/fuzz/fuzz-TARGET.c) built by clang with ASan
# and UBSan into tests/fuzz/.build/, apart from build/; `make fuzz` runs
# each for FUZZTIME seconds and fails on any crash or leak. The same
# harnesses linked with tests/fuzz/replay.c (fuzz-replay-TARGET, in
# TESTBINS) replay the corpus and every crash found in make test.
FUZZTIME ?= 60
FUZZ_CC	  = clang
FUZZ_DIR  = tests/fuzz/.build
FUZZ_SAN  = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
	    -fno-omit-frame-pointer
fuzzobj = $(patsubst %.c,$(FUZZ_DIR)/%.o,$(1))

# What each harness links besides itself and replay.c. control.c's table
# names every handler, so that one takes the daemon, cellblockd.c with its
# main renamed (server/cellblockd-lib.o, below).
FUZZ_LINK_jmsg	  = $(PROTO_SRC) $(BASE_SRC)
FUZZ_LINK_control = $(filter-out server/cellblockd.c,$(DAEMON_SRC)) \
		    server/cellblockd-lib.c $(PROTO_SRC) $(SESS_SRC) $(BASE_SRC) \
		    $(SANDBOX_PARENT)
FUZZ_LINK_rest	  = $(FUZZ_LINK_control)
FUZZ_LINK_channel = sessions/channel.c protocol/jwrite.c $(BASE_SRC)
FUZZ_LINK_config  = server/config.c $(EGRESS_POLICY) $(BASE_SRC)
FUZZ_LINK_zmtp	  = $(PROTO_SRC) $(BASE_SRC)
FUZZ_LINK_http	  = $(FUZZ_LINK_control)
FUZZ_LINK_ws	  = $(FUZZ_LINK_control)

define FUZZ_RULES
$(BINDIR)/fuzz-replay-$(1): $$(call obj,tests/fuzz/replay.c \
	    tests/fuzz/fuzz-$(1).c $$(FUZZ_LINK_$(1)))
$(FUZZ_DIR)/fuzz-$(1): $$(call fuzzobj,tests/fuzz/fuzz-$(1).c $$(FUZZ_LINK_$(1)))
	$$(FUZZ_CC) -fsanitize=fuzzer $$(FUZZ_SAN) -o $$@ $$^ $$(LIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_RULES,$(t))))

# cellblockd.o with main renamed: libFuzzer's or replay.c's main is the one.
%/server/cellblockd-lib.o: %/server/cellblockd.o
	objcopy --redefine-sym main=cellblockd_main $< $@

$(FUZZ_DIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(ALL_CFLAGS) -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
	    -c -o $@ $<

-include $(shell find $(FUZZ_DIR) -name '*.d' 2>/dev/null)

fuzz: deps $(patsubst %,$(FUZZ_DIR)/fuzz-%,$(FUZZ_TARGETS))
	@sh tests/fuzz/run.sh $(FUZZTIME) $(FUZZ_TARGETS)

.PHONY: fuzz
# --- end of Fuzzing ---------------------------------------------------------

# No `make format`: clang-format cannot write style(9)'s tab between a
# declaration's type and its name, so it would rewrite every file
# (measured in docs/ARCHITECTURE.md, "Folders and the base layer").
# --- Installing and packaging (docs/OPERATIONS.md) -------------------------
# The layout server_paths() (server/cellblockd.c) looks for: the daemon in
# sbin, the CLI in bin, the shim in libexec/cellblock, the zygote in
# lib/cellblock, the runner in share/cellblock/runner.
PREFIX	 ?= /usr/local
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR	 ?= $(if $(filter /usr,$(PREFIX)),/lib/systemd/system,$(PREFIX)/lib/systemd/system)
PKG	  = server/packaging
# The Python SDK (docs/AGENTS.md) goes where Debian's python3 finds it.
PYDIR	 ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/python3/dist-packages,$(PREFIX)/lib/python3/dist-packages)
SDK	  = server/sdk/python/cellblock_sdk
DEBARCH	 := $(shell dpkg --print-architecture 2>/dev/null)
DEBDIR	  = build/deb
DEB	  = $(DEBDIR)/cellblock_$(VERSION)_$(DEBARCH).deb

install: programs
	install -d $(DESTDIR)$(PREFIX)/sbin $(DESTDIR)$(PREFIX)/bin \
	    $(DESTDIR)$(PREFIX)/libexec/cellblock $(DESTDIR)$(PREFIX)/lib/cellblock \
	    $(DESTDIR)$(PREFIX)/share/cellblock/runner \
	    $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(PREFIX)/share/jupyter/kernels/cellblock \
	    $(DESTDIR)$(SYSCONFDIR)/cellblock $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(PYDIR)/cellblock_sdk
	install -m 0755 $(BINDIR)/cellblockd $(DESTDIR)$(PREFIX)/sbin/
	install -m 0755 $(BINDIR)/cellblock $(DESTDIR)$(PREFIX)/bin/
	install -m 0755 $(BINDIR)/cellblock-shim $(DESTDIR)$(PREFIX)/libexec/cellblock/
	install -m 0755 $(BINDIR)/cellblock-egress $(DESTDIR)$(PREFIX)/libexec/cellblock/
	install -m 0755 $(BINDIR)/cellblock-init $(DESTDIR)$(PREFIX)/libexec/cellblock/
	install -m 0644 $(BINDIR)/cellblock-zygote.so $(DESTDIR)$(PREFIX)/lib/cellblock/
	install -m 0644 kernel-shim/runner/*.py $(DESTDIR)$(PREFIX)/share/cellblock/runner/
	install -m 0644 $(SDK)/*.py $(DESTDIR)$(PYDIR)/cellblock_sdk/
	install -m 0644 docs/cellblock.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 docs/cellblockd.8 $(DESTDIR)$(PREFIX)/share/man/man8/
	sed 's|@BINDIR@|$(PREFIX)/bin|' $(PKG)/kernel.json \
	    > $(DESTDIR)$(PREFIX)/share/jupyter/kernels/cellblock/kernel.json
	install -m 0644 $(PKG)/cellblockd.conf $(DESTDIR)$(SYSCONFDIR)/cellblock/
	sed -e 's|/usr/sbin/cellblockd|$(PREFIX)/sbin/cellblockd|' \
	    -e 's|/etc/cellblock/|$(SYSCONFDIR)/cellblock/|' \
	    $(PKG)/cellblockd.service > $(DESTDIR)$(UNITDIR)/cellblockd.service

# A copy of the tree with debian/ at its top, built by dpkg-buildpackage.
deb:
	rm -rf $(DEBDIR)
	mkdir -p $(DEBDIR)/cellblock-$(VERSION)
	tar -c --exclude=./build --exclude=./bin --exclude='./build-*' \
	    --exclude='./bin-*' --exclude=./.git --exclude=./var \
	    --exclude='*/.build' --exclude='__pycache__' . | \
	    tar -x -C $(DEBDIR)/cellblock-$(VERSION)
	cp -r $(PKG)/debian $(DEBDIR)/cellblock-$(VERSION)/debian
	cd $(DEBDIR)/cellblock-$(VERSION) && env -u CI -u MAKEFLAGS \
	    dpkg-buildpackage -b -us -uc
	@echo "built $(DEB)"

# The package's lintian report (remaining tags: docs/OPERATIONS.md).
lintian: deb
	lintian --info $(DEB)

.PHONY: programs install deb lintian
# --- end of Installing and packaging ----------------------------------------

clean:
	rm -rf build bin build-asan bin-asan

.PHONY: all deps run test bench bench-hotpath asan asan-build clean
