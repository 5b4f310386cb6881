# `make bench`: hauld side by side with fetchmail, fdm, getmail6 and mpop
# against a private Dovecot (bench/README.md, docs/performance.md).  Not
# part of `make test`.  Needs root (private Dovecot and Postfix).
#
#   make bench                        every workload, BENCH_RUNS (3) runs
#   make bench BENCH=pop3-20k-keep    one workload, or a comma list, or a
#                                     prefix (BENCH=idle); BENCH=list
#   make bench BENCH_RUNS=1 BENCH_PEERS=hauld,fetchmail
#
# BENCH_CAP: seconds a peer may run before it is stopped (default 6).
# The binaries are an optimised build without test hooks in
# $(BUILD)/bench; the report goes to bench/results/DATE-HOST.md
# (BENCH_OUT to change it).

BENCH_BUILD ?= $(BUILD)/bench
BENCH ?= all
BENCH_RUNS ?= 3
BENCH_PEERS ?=
BENCH_CAP ?= 6
BENCH_OUT ?=
BENCH_TOOLS := $(BENCH_BUILD)/bench/limit $(BENCH_BUILD)/bench/runner

.PHONY: bench bench-deps bench-build

bench-deps: deps
	@sh bench/deps.sh

# A sub-make, so the build sees the libraries deps may have installed.
bench-build: bench-deps
	@$(MAKE) --no-print-directory BUILD=$(BENCH_BUILD) TEST_HOOKS= \
	    $(BENCH_BUILD)/hauld $(BENCH_BUILD)/haul-milter \
	    $(BENCH_BUILD)/haulctl $(BENCH_TOOLS)

$(BUILD)/bench/limit: $(BUILD)/bench/limit.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/bench/runner: $(BUILD)/bench/runner.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^

bench: bench-build
	@if [ "$(BENCH)" = list ]; then python3 bench/bench.py --list; \
	else python3 bench/bench.py --build $(BENCH_BUILD) \
	    --runs $(BENCH_RUNS) --cap $(BENCH_CAP) \
	    $(if $(filter-out all,$(BENCH)),--only $(BENCH)) \
	    $(if $(BENCH_PEERS),--peers $(BENCH_PEERS)) \
	    $(if $(BENCH_OUT),--out $(BENCH_OUT)); fi
