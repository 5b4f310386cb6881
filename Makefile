# haul: one non-recursive Makefile.  Sources are found by directory:
#   lib/*.c          -> libhaul.a    (shared by every binary)
#   fetcher/*.c      -> hauld        (fetcher/main.c holds main)
#   plugin/*.c       -> haul-milter  (plugin/main.c holds main)
#   ctl/*.c          -> haulctl      (ctl/main.c holds main)
#   tests/{lib,fetcher,plugin,ctl}/*.c -> one Criterion binary
# so adding a module never means editing this file.

PREFIX	?= /usr/local
SBINDIR	?= $(PREFIX)/sbin
BINDIR	?= $(PREFIX)/bin
MANDIR	?= $(PREFIX)/share/man
# The daemons read /etc/haul/haul.conf by default, whatever PREFIX is.
SYSCONFDIR ?= /etc
UNITDIR	?= $(PREFIX)/lib/systemd/system
DESTDIR	?=

CC	?= cc
BUILD	?= build
OPT	?= -O2 -g
SAN	?=
PKG_CONFIG ?= pkg-config

VERSION	:= 0.1.0
PKGS	:= openssl libconfuse libevent libevent_openssl sqlite3
WARN	:= -std=c11 -Wall -Wextra -Wformat=2 -Wshadow -Wmissing-prototypes \
	   -Wpointer-arith -Wno-unused-parameter -Werror
CPPFLAGS += -D_GNU_SOURCE -Iinclude -DHAUL_VERSION=\"$(VERSION)\"
# Test-only hooks (kill points, fault injection) exist only in test builds.
ifeq ($(TEST_HOOKS),1)
CPPFLAGS += -DHAUL_TEST_HOOKS
endif
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) milter 2>/dev/null)
PKG_LIBS := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
MILTER_LIBS := $(shell $(PKG_CONFIG) --libs milter 2>/dev/null)
CRIT_CFLAGS := $(shell $(PKG_CONFIG) --cflags criterion 2>/dev/null)
CRIT_LIBS := $(shell $(PKG_CONFIG) --libs criterion 2>/dev/null)
ALL_CFLAGS = $(WARN) $(OPT) $(SAN) $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN) $(LDFLAGS)

LIB_SRCS := $(wildcard lib/*.c)
FET_SRCS := $(filter-out fetcher/main.c,$(wildcard fetcher/*.c))
PLG_SRCS := $(filter-out plugin/main.c,$(wildcard plugin/*.c))
CTL_SRCS := $(filter-out ctl/main.c,$(wildcard ctl/*.c))
TEST_SRCS := $(wildcard tests/lib/*.c tests/fetcher/*.c tests/plugin/*.c \
	     tests/ctl/*.c)
HELPER_SRCS := $(wildcard tests/helpers/*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(patsubst tests/fuzz/%.c,%,$(FUZZ_SRCS))

obj = $(patsubst %.c,$(BUILD)/%.o,$(1))

LIBHAUL := $(BUILD)/libhaul.a
LIBFET := $(BUILD)/libfetcher.a
LIBPLG := $(BUILD)/libplugin.a
LIBCTL := $(BUILD)/libctl.a
HAULD := $(BUILD)/hauld
MILTER := $(BUILD)/haul-milter
HAULCTL := $(BUILD)/haulctl
UNIT := $(BUILD)/tests/unit
HELPERS := $(patsubst tests/helpers/%.c,$(BUILD)/tests/%,$(HELPER_SRCS))
REPLAYS := $(patsubst %,$(BUILD)/fuzz/%-replay,$(FUZZ_NAMES))
BINS := $(HAULD) $(MILTER) $(HAULCTL)

.PHONY: all test unit integration asan valgrind install clean deps check-config \
	fuzz test-helpers demo
SHELL := /bin/bash
.DEFAULT_GOAL := all

all: $(BINS)

# V=1 shows whole command lines.
ifeq ($(V),1)
Q :=
else
Q := @
endif

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $@")
	$(Q)$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $(CRIT_CFLAGS) -MMD -MP -c -o $@ $<

$(LIBHAUL): $(call obj,$(LIB_SRCS))
$(LIBFET): $(call obj,$(FET_SRCS))
$(LIBPLG): $(call obj,$(PLG_SRCS))
$(LIBCTL): $(call obj,$(CTL_SRCS))
$(LIBHAUL) $(LIBFET) $(LIBPLG) $(LIBCTL):
	@mkdir -p $(dir $@)
	@rm -f $@
	@$(if $(Q),echo "  AR      $@")
	$(Q)ar rcs $@ $^ $(if $^,,$(BUILD)/empty.o)

$(BUILD)/empty.o:
	@mkdir -p $(dir $@)
	$(Q)echo 'typedef int haul_empty_unit;' | $(CC) $(ALL_CFLAGS) -x c -c -o $@ -
$(LIBFET) $(LIBPLG) $(LIBCTL): | $(BUILD)/empty.o

$(HAULD): $(BUILD)/fetcher/main.o $(LIBFET) $(LIBHAUL)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm
$(MILTER): $(BUILD)/plugin/main.o $(LIBPLG) $(LIBHAUL)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(MILTER_LIBS) $(PKG_LIBS) -lm
$(HAULCTL): $(BUILD)/ctl/main.o $(LIBCTL) $(LIBFET) $(LIBHAUL)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(UNIT): $(call obj,$(TEST_SRCS)) $(LIBFET) $(LIBPLG) $(LIBCTL) $(LIBHAUL)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(CRIT_LIBS) $(MILTER_LIBS) $(PKG_LIBS) -lm

# Fuzz harnesses with a plain main() that replays the saved corpus (no
# libFuzzer needed): `make test` runs every saved input through them.
$(BUILD)/fuzz/%-replay: $(BUILD)/tests/fuzz/%.o $(BUILD)/tests/fuzz/replay.o \
    $(LIBFET) $(LIBHAUL)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

$(BUILD)/tests/%: $(BUILD)/tests/helpers/%.o $(LIBFET) $(LIBHAUL)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS) -lm

deps:
	@sh .ci/deps.sh

# The README's first command: install what is missing, build, then show
# hauld's job end to end on 127.0.0.1 (docs/demo.md); KEEP=1 leaves it
# running.  The build is a sub-make: PKG_CFLAGS/PKG_LIBS above were
# computed before deps could install the libraries.
demo: deps
	@$(MAKE) --no-print-directory BUILD=$(BUILD) all
	@python3 demo/demo.py --build $(BUILD) $(if $(filter-out 0 no,$(KEEP)),--keep)

# The README's test command: install what is missing, build, run every
# unit and integration test.  The last line is the overall summary.
test: deps
	@$(MAKE) --no-print-directory TEST_HOOKS=1 BUILD=$(BUILD)/test \
	    $(BUILD)/test/hauld $(BUILD)/test/haul-milter $(BUILD)/test/haulctl \
	    $(BUILD)/test/tests/unit test-helpers
	@bash tests/run.sh $(BUILD)/test

test-helpers: $(HELPERS) $(REPLAYS)

unit: deps
	@$(MAKE) --no-print-directory TEST_HOOKS=1 BUILD=$(BUILD)/test $(BUILD)/test/tests/unit
	@$(BUILD)/test/tests/unit

# The same suite under ASan+UBSan.
asan: deps
	@$(MAKE) --no-print-directory TEST_HOOKS=1 BUILD=$(BUILD)/asan OPT="-O1 -g" \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
	    $(BUILD)/asan/hauld $(BUILD)/asan/haul-milter $(BUILD)/asan/haulctl \
	    $(BUILD)/asan/tests/unit test-helpers
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:exitcode=86 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    bash tests/run.sh $(BUILD)/asan

# hauld under valgrind (memcheck, leaks) through the POP3 integration
# tests, plus both daemons' config checks.  The unit tests are not run
# under valgrind: Criterion's workers share memory in ways memcheck
# misreports; they run under ASan/LSan in `make asan` instead.
VG := valgrind -q --leak-check=full --errors-for-leak-kinds=definite \
	--error-exitcode=1
valgrind: deps
	@$(MAKE) --no-print-directory TEST_HOOKS=1 BUILD=$(BUILD)/test \
	    $(BUILD)/test/hauld $(BUILD)/test/haul-milter
	@rm -rf $(BUILD)/valgrind && mkdir -p $(BUILD)/valgrind
	$(VG) $(BUILD)/test/hauld -n -c etc/haul.conf
	$(VG) $(BUILD)/test/haul-milter -n -c etc/haul.conf
	HAUL_WRAPPER="$(VG) --log-file=$(CURDIR)/$(BUILD)/valgrind/hauld.%p.log" \
	    python3 tests/integration/run.py --build $(BUILD)/test -k 'test_pop3'
	@if [ -n "$$(find $(BUILD)/valgrind -name '*.log' -size +0)" ]; then \
		find $(BUILD)/valgrind -name '*.log' -size +0 -exec cat {} +; \
		echo "valgrind: errors above"; exit 1; \
	else echo "valgrind: clean ($$(ls $(BUILD)/valgrind | wc -l) hauld runs)"; fi

# libFuzzer runs (clang): FUZZ_SECONDS per target, growing the corpora in
# tests/fuzz/corpus/; crashes land in build/fuzzer/artifacts/.  FUZZ=name
# runs one target.  The config target skips leak checks: libconfuse leaks
# a few bytes on some malformed inputs (docs/security.md).
FUZZ_SECONDS ?= 60
FUZZ ?= $(FUZZ_NAMES)
fuzz: deps
	@$(MAKE) --no-print-directory CC=clang TEST_HOOKS=1 BUILD=$(BUILD)/fuzzer \
	    OPT="-O1 -g" SAN="-fsanitize=fuzzer-no-link,address,undefined" \
	    $(BUILD)/fuzzer/libfetcher.a $(BUILD)/fuzzer/libhaul.a \
	    $(patsubst %,$(BUILD)/fuzzer/tests/fuzz/%.o,$(FUZZ))
	@for f in $(FUZZ); do \
		clang -fsanitize=fuzzer,address,undefined -o $(BUILD)/fuzzer/$$f \
		    $(BUILD)/fuzzer/tests/fuzz/$$f.o $(BUILD)/fuzzer/libfetcher.a \
		    $(BUILD)/fuzzer/libhaul.a $(PKG_LIBS) -lm || exit 1; \
		mkdir -p tests/fuzz/corpus/$$f; \
		echo "== $$f ($(FUZZ_SECONDS)s)"; \
		mkdir -p $(BUILD)/fuzzer/artifacts; \
		leaks=1; [ $$f = fuzz_config ] && leaks=0; \
		ASAN_OPTIONS=detect_leaks=$$leaks $(BUILD)/fuzzer/$$f \
		    -max_total_time=$(FUZZ_SECONDS) -detect_leaks=$$leaks \
		    -artifact_prefix=$(BUILD)/fuzzer/artifacts/$$f- \
		    -print_final_stats=1 tests/fuzz/corpus/$$f 2>&1 | \
		    grep -E 'stat::number_of_executed_units|ERROR|SUMMARY|crash' ; \
		[ $${PIPESTATUS[0]} -eq 0 ] || exit 1; \
	done

check-config: $(HAULD) $(MILTER)
	$(HAULD) -n -c etc/haul.conf
	$(MILTER) -n -c etc/haul.conf

install: all
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/haul/accounts.d
	install -m 0755 $(HAULD) $(MILTER) $(DESTDIR)$(SBINDIR)/
	install -m 0755 $(HAULCTL) $(DESTDIR)$(BINDIR)/
	install -m 0644 etc/haul.conf $(DESTDIR)$(SYSCONFDIR)/haul/haul.conf.sample
	install -m 0644 etc/accounts.d/example.conf \
	    $(DESTDIR)$(SYSCONFDIR)/haul/accounts.d/example.conf.sample
	install -d $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	    $(DESTDIR)$(UNITDIR)
	install -m 0644 man/haul.conf.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 man/hauld.8 man/haul-milter.8 man/haulctl.8 \
	    $(DESTDIR)$(MANDIR)/man8/
	for u in hauld haul-milter; do \
		sed 's|/usr/local/sbin/|$(SBINDIR)/|g' etc/systemd/$$u.service \
		    > $(DESTDIR)$(UNITDIR)/$$u.service && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.service || exit 1; \
	done

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Optional target groups (bench, crash runs, ...) live in mk/*.mk so that
# adding one never means editing this file.
include $(wildcard mk/*.mk)
