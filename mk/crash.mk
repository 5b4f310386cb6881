# `make test-crash`: the full crash-consistency matrix (docs/delivery-
# guarantees.md, "Crash testing"): every kill point x POP3/IMAP/IDLE x
# SMTP/LMTP/LDA x keep/delete at its first and third hit, random-time
# SIGKILLs (3 per scenario), and storage faults (ENOSPC, EIO on write and
# fsync, failed commits) in the UID store; ends with a summary table.
# `make test` runs a fast subset (tests/integration/test_crash.py).
# Needs root (private Dovecot); the binaries are the test build (kill
# points and fault injection exist only there).
#
#   make test-crash                        everything (~1040 scenarios)
#   make test-crash CRASH_ARGS="--only point --protos pop3 --nths 1"

CRASH_ARGS ?=

.PHONY: test-crash

test-crash: deps
	@$(MAKE) --no-print-directory TEST_HOOKS=1 BUILD=$(BUILD)/test \
	    $(BUILD)/test/hauld $(BUILD)/test/haulctl
	@python3 tests/crash/run_crash.py --build $(BUILD)/test $(CRASH_ARGS)
