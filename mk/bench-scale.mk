# `make bench-scale`: one hauld holding thousands of TLS IDLE sessions
# against bench/scale/imapd (an event-driven test IMAP server): RSS per
# session, CPU at rest, push latency at a steady message rate, reconnect
# storm recovery (bench/scale/README.md).  Not part of `make test`.
# Needs root (raises RLIMIT_NOFILE past the hard limit).
#
#   make bench-scale                          10,000 accounts
#   make bench-scale SCALE_N=2000 SCALE_SECS=20
#   make bench-scale SCALE_ARGS="--slope 1000"  extra run.py options
#
# The binaries are an optimised build without test hooks in
# $(BUILD)/scale; the report goes to bench/scale/results/.

SCALE_BUILD ?= $(BUILD)/scale
SCALE_N ?= 10000
SCALE_SECS ?= 60
SCALE_ARGS ?=
SCALE_IMAPD := $(SCALE_BUILD)/bench/scale/imapd

.PHONY: bench-scale bench-scale-build

$(BUILD)/bench/scale/imapd: $(BUILD)/bench/scale/imapd.o
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(PKG_LIBS)

# A sub-make, so the build sees the libraries deps may have installed.
bench-scale-build: deps
	@$(MAKE) --no-print-directory BUILD=$(SCALE_BUILD) TEST_HOOKS= \
	    $(SCALE_BUILD)/hauld $(SCALE_BUILD)/haulctl $(SCALE_IMAPD)

bench-scale: bench-scale-build
	@python3 bench/scale/run.py --build $(SCALE_BUILD) -n $(SCALE_N) \
	    --duration $(SCALE_SECS) $(SCALE_ARGS)
