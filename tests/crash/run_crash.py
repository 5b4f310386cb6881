#!/usr/bin/env python3
# ISC License; see LICENSE.
"""The full crash-consistency run (`make test-crash`): every kill point x
POP3/IMAP/IDLE x SMTP/LMTP/LDA x keep/delete (at its first and a later
hit), kills at a random hit of any point, random-time kills, and storage
faults; prints one line per failure and the summary tables.  Exit 1 if
any scenario failed or was misconfigured.

    python3 tests/crash/run_crash.py --build BUILD [--only KIND,...]
        [--protos pop3,imap,idle] [--modes smtp,lmtp,lda] [--random N]
        [--faults N] [--nths 1,mid] [--aimed N] [--limit N] [--keep-dir] [-v]

Needs root (the private Dovecot) and a test build (TEST_HOOKS=1).
"""

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import crashkit  # noqa: E402
import haulfix  # noqa: E402

FAULTS = ("commit:eio:%d", "commit:enospc:%d", "sync:eio:%d",
          "write:eio:%d", "write:enospc:%d")
# Positions (the Nth commit / fsync / write of the run) that a 4-message
# run reaches: from opening the store to the last record.
POSITIONS = {"commit": (1, 2, 3), "sync": (2, 4, 6, 8),
             "write": (5, 8, 11, 14)}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", required=True)
    ap.add_argument("--only", default="point,aimed,random,fault")
    ap.add_argument("--protos", default="pop3,imap,idle")
    ap.add_argument("--modes", default="smtp,lmtp,lda")
    ap.add_argument("--nths", default="1,mid",
                    help="hits to kill at: numbers, or mid (a later hit: "
                    "half the hits of a clean run, at least the 2nd)")
    ap.add_argument("--aimed", type=int, default=250,
                    help="kills at a random hit of any point")
    ap.add_argument("--random", type=int, default=150,
                    help="random-time scenarios (3 kills each)")
    ap.add_argument("--faults", type=int, default=4,
                    help="injection positions per fault type and mode")
    ap.add_argument("--limit", type=int, default=0,
                    help="stop after this many scenarios (0: all)")
    ap.add_argument("--keep-dir", action="store_true")
    ap.add_argument("--lenient-lda", action="store_true",
                    help="count cut LDA copies without failing (they "
                    "cannot happen since the agent reads a whole file)")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args(argv)
    hauld = os.path.abspath(os.path.join(a.build, "hauld"))
    if not os.access(hauld, os.X_OK):
        sys.exit("no %s: build with TEST_HOOKS=1 first" % hauld)
    if os.geteuid() != 0:
        sys.exit("run_crash: needs root (private Dovecot)")
    haulfix.become_subreaper()
    # SIGTERM/SIGINT: stop the fixtures on the way out (finally below)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(130))
    kinds = a.only.split(",")
    protos = a.protos.split(",")
    modes = a.modes.split(",")
    nths = [x if x == "mid" else int(x) for x in a.nths.split(",")]
    scs = []
    if "point" in kinds:
        scs += crashkit.point_scenarios(protos, modes, (True, False), nths)
    if "fault" in kinds:
        fp = [p for p in protos if p != "idle"]
        for spec in FAULTS:
            pos = POSITIONS[spec.split(":")[0]]
            for n in range(a.faults):
                scs += crashkit.fault_scenarios(fp, modes,
                                                [spec % pos[n % len(pos)]])
    work = tempfile.mkdtemp(prefix="haul-crash-")
    lab = crashkit.Lab(hauld, work, a.verbose)
    lab.strict_lda = not a.lenient_lda
    results = []
    t0 = time.monotonic()
    try:
        lab.start()
        if "aimed" in kinds and a.aimed > 0:
            scs += crashkit.aimed_scenarios(protos, modes, (True, False),
                                            a.aimed)
        if "random" in kinds and a.random > 0:
            scs += crashkit.random_scenarios(protos, modes, (True, False),
                                             a.random)
        if a.limit:
            scs = scs[:a.limit]
        print("%d scenarios" % len(scs), flush=True)
        for i, sc in enumerate(scs):
            r = lab.run(sc)
            if r.skipped:
                continue
            results.append(r)
            if not r.ok or a.verbose:
                print("[%d/%d %.0fs] %s" % (i + 1, len(scs),
                                            time.monotonic() - t0, r),
                      flush=True)
            elif (i + 1) % 50 == 0:
                print("[%d/%d %.0fs] ..." % (i + 1, len(scs),
                                             time.monotonic() - t0),
                      flush=True)
    finally:
        lab.close()
        if not a.keep_dir:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("kept", work)
    print(crashkit.point_summary(results))
    print(crashkit.summary(results))
    bad = [r for r in results if not r.ok]
    kills = sum(r.kills for r in results)
    faults = sum(r.faults for r in results)
    print("crash: %d scenarios, %d kills, %d store faults, %d hauld runs, "
          "%d failed, %.0fs" % (len(results), kills, faults,
                                sum(r.runs for r in results), len(bad),
                                time.monotonic() - t0))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
