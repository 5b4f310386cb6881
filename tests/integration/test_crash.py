# ISC License; see LICENSE.
"""Crash consistency, the fast subset (`make test`; the full matrix is
`make test-crash`, tests/crash/run_crash.py).  hauld is SIGKILLed at its
kill points (HAUL_KILLPOINT, test builds only), at random times, or meets
an injected store fault (HAUL_FAULT_STORE); `hauld -1` then runs until
the account is done.  Every scenario checks (tests/crash/crashkit.py):
no seeded message lost (byte-exact copies in the sink), duplicates only
for messages the MTA had when the record was not yet durable, keep=yes
never deletes (IMAP: never \\Seen), delete empties the server, nothing
leaves the server without a durable record, the store opens on every
restart.  One private Dovecot for the module; 4-12 messages a scenario.
See docs/delivery-guarantees.md, "Crash testing".
"""

import os
import sys

import haulfix
from haulfix import timeout

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "crash"))
import crashkit  # noqa: E402

SETUP_TIMEOUT = 60

# (proto, delivery mode, keep) combinations the point kills rotate over
COMBOS = [("pop3", "smtp", False), ("imap", "lmtp", True),
          ("pop3", "lda", True), ("imap", "smtp", False),
          ("imap", "lda", False), ("pop3", "lmtp", False)]


def setup_module(env):
    haulfix.need_root()
    haulfix.need_binaries("dovecot", "openssl", "smtp-sink")
    env.need("hauld", "haulctl")
    if not _has_hooks(env.hauld):
        raise haulfix.Skip("hauld is not a test build (TEST_HOOKS=1)")
    env.lab = crashkit.Lab(env.hauld, env.tmpdir).start()
    env.results = []


def teardown_module(env):
    lab = getattr(env, "lab", None)
    if lab is not None:
        lab.close()
    if getattr(env, "results", None):
        env.log("\n" + crashkit.summary(env.results))


def _has_hooks(binary):
    with open(binary, "rb") as f:
        return b"HAUL_KILLPOINT" in f.read()


def _run_all(env, scenarios):
    bad = []
    for sc in scenarios:
        r = env.lab.run(sc)
        env.results.append(r)
        env.log("%s (%.1fs, %d kills, %d dups)" % (
            "ok  " if r.ok else "FAIL", r.elapsed, r.kills, r.dups) +
            " " + str(sc))
        if not r.ok:
            bad.append(str(r))
    assert not bad, "%d of %d scenarios failed:\n%s" % (
        len(bad), len(scenarios), "\n".join(bad))
    return [env.results[-len(scenarios) + i] for i in range(len(scenarios))]


def _points(proto_filter, shift=0):
    """Every kill point once per protocol, each in a different
    (mode, keep) combination, rotating."""
    out = []
    i = shift
    for name, _, _ in crashkit.POINTS:
        for k in range(len(COMBOS)):
            proto, dmode, keep = COMBOS[(i + k) % len(COMBOS)]
            proto = proto_filter(proto)
            if crashkit.applies(name, proto, dmode, keep):
                out.append(crashkit.Scenario(proto, dmode, keep, (name, 1)))
                break
        i += 1
    return out


@timeout(90)
def test_kill_points_pop3(env):
    """Each kill point applicable to POP3, first hit, SIGKILL; restart."""
    rs = _run_all(env, _points(lambda p: "pop3"))
    assert sum(r.kills for r in rs) >= 15


@timeout(90)
def test_kill_points_imap(env):
    """Each kill point applicable to IMAP, first hit; restart."""
    rs = _run_all(env, _points(lambda p: "imap", shift=3))
    assert sum(r.kills for r in rs) >= 15


@timeout(60)
def test_kill_points_idle(env):
    """IMAP IDLE (hauld -f): the messages arrive while it idles; kills on
    the push path (fetch, MTA reply, record, delete)."""
    scs = [crashkit.Scenario("idle", "smtp", False, ("fetch.begin", 2)),
           crashkit.Scenario("idle", "lmtp", True, ("smtp.reply.FINAL", 1)),
           crashkit.Scenario("idle", "lda", False, ("store.durable", 2)),
           crashkit.Scenario("idle", "smtp", False,
                             ("fetch.delete_committed", 1))]
    rs = _run_all(env, scs)
    assert sum(r.kills for r in rs) == len(scs)


@timeout(90)
def test_random_kills(env):
    """Three SIGKILLs at uniformly random times during a 12-message fetch
    (POP3, IMAP, IDLE x SMTP, LMTP, LDA), then run to completion."""
    scs = crashkit.random_scenarios(["pop3", "imap", "idle"],
                                    ["smtp", "lmtp", "lda"], [False, True],
                                    6, seed=4)
    rs = _run_all(env, scs)
    assert sum(r.kills for r in rs) >= 6, "random kills mostly missed"


@timeout(90)
def test_store_faults(env):
    """ENOSPC and EIO on write, EIO on fsync, a failed group commit,
    injected in the UID store during a fetch: the session stops, nothing
    without a durable record is deleted, a rerun delivers everything."""
    specs = ["write:enospc:5", "write:enospc:9", "write:enospc:14",
             "write:eio:6", "write:eio:12", "sync:eio:2", "sync:eio:4",
             "sync:eio:6", "commit:eio:2", "commit:enospc:3"]
    scs = [crashkit.Scenario("pop3" if i % 2 == 0 else "imap",
                             "smtp" if i % 3 else "lda", False, fault=f)
           for i, f in enumerate(specs)]
    rs = _run_all(env, scs)
    assert sum(r.faults for r in rs) == len(specs)
    total = sum(r.kills for r in env.results)
    env.log("kills so far in this module: %d" % total)
