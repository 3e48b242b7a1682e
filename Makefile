# cellblock: one non-recursive Makefile for the daemon, the CLI, the shim
# and their tests. `make` builds bin/; `make test` runs every test.

PYTHON	?= /usr/bin/python3
CC	?= cc
PKGS	 = libczmq libzmq jansson libsodium libseccomp
VERSION	 = 0.1.0
PYVER	:= $(shell $(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null)

WARN	 = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wpointer-arith -Wformat=2 -Wno-format-nonliteral
ifneq ($(CI),)
WARN	+= -Werror
endif
CFLAGS	?= -O2 -g
ALL_CFLAGS = -std=gnu11 -D_GNU_SOURCE $(WARN) $(CFLAGS) -MMD -MP \
	   -Iprotocol -Isessions -Iserver -Ikernel-shim \
	   -DCELLBLOCK_VERSION='"$(VERSION)"' -DCELLBLOCK_PYVER='"$(PYVER)"' \
	   $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LIBS	 = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread

# Sources: each directory is a library; the programs pick what they need.
PROTO_SRC	= $(filter-out protocol/test-%.c,$(wildcard protocol/*.c))
SESS_SRC	= $(filter-out sessions/test-%.c,$(wildcard sessions/*.c))
SERVER_COMMON	= server/connfile.c server/config.c
DAEMON_SRC	= $(filter-out server/cellblock.c server/client.c server/cmd-%.c \
		    server/jclient.c,$(wildcard server/*.c))
CLI_SRC		= server/cellblock.c server/client.c server/jclient.c \
		  $(wildcard server/cmd-*.c) $(SERVER_COMMON)
SHIM_SRC	= $(filter-out kernel-shim/test-%.c,$(wildcard kernel-shim/*.c))

obj = $(patsubst %.c,build/%.o,$(1))

BINS	= bin/cellblockd bin/cellblock bin/cellblock-shim
TESTBINS = bin/test-protocol $(if $(wildcard sessions/test-cgroup.c),bin/test-cgroup) \
	   $(if $(wildcard tests/sandbox/try-syscall.c),bin/try-syscall) \
	   $(if $(wildcard tests/sandbox/seccomp-check.c),bin/seccomp-check) \
	   $(if $(wildcard tests/sandbox/sandbox-check.c),bin/sandbox-check)

all: $(BINS) $(TESTBINS)

bin/cellblockd: $(call obj,$(DAEMON_SRC) $(PROTO_SRC) $(SESS_SRC))
bin/cellblock: $(call obj,$(CLI_SRC) $(PROTO_SRC))
bin/cellblock-shim: $(call obj,$(SHIM_SRC) protocol/xmalloc.c)
bin/test-protocol: $(call obj,protocol/test-protocol.c $(PROTO_SRC))
bin/test-cgroup: $(call obj,sessions/test-cgroup.c sessions/cgroup.c)
bin/try-syscall: $(call obj,tests/sandbox/try-syscall.c)
bin/seccomp-check: $(call obj,tests/sandbox/seccomp-check.c kernel-shim/sandbox-seccomp.c)
bin/sandbox-check: $(call obj,tests/sandbox/sandbox-check.c kernel-shim/sandbox-mount.c \
	    kernel-shim/sandbox-user.c kernel-shim/sandbox-proc.c)

bin/%:
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LIBS)

build/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

-include $(shell find build -name '*.d' 2>/dev/null)

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

asan:
	$(MAKE) clean
	$(MAKE) CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer" \
	    LDFLAGS="-fsanitize=address,undefined" test

format:
	clang-format -i $(wildcard */*.c */*.h)

clean:
	rm -rf build bin

.PHONY: all deps run test bench asan format clean
