# ISC License; see LICENSE.
"""crashkit: kill hauld at every step of fetch -> deliver -> record ->
delete, restart it, and check that no message was lost.  Python 3 stdlib
only; used by tests/integration/test_crash.py (the fast subset in `make
test`) and tests/crash/run_crash.py (`make test-crash`).  What it checks
and why: docs/delivery-guarantees.md, "Crash testing".

    lab = Lab(hauld_path, workdir)          # one Dovecot, smtp-sink, LDA
    lab.start()
    res = lab.run(Scenario("pop3", "smtp", keep=False,
                           kill=("store.durable", 1)))
    res.ok, res.problems, res.dups
    lab.close()

A scenario seeds a fresh mailbox (unique Message-IDs; empty body, bare LF,
'.'-leading lines, a 300 KB message that spills the spool to disk), runs
hauld with HAUL_KILLPOINT (or kills it at a random time, or injects a
store fault with HAUL_FAULT_STORE), then `hauld -1` until the account is
done, and checks the invariants:

  I1  every seeded Message-ID reached the sink (every LMTP recipient),
      byte-exact;
  I2  a message has more than one copy only if a killed (or faulted) run
      left it at the MTA without a durable record (copy delivered, kill
      before the commit): copies <= 1 + such runs;
  I3  keep=yes: the server still has every message, none \\Seen or
      \\Deleted; delete: the server ends empty, and after any run nothing
      is missing from the server unless durably recorded as accepted;
  I4  the UID store opens on every restart (no run reports a store error
      at start, no run dies by a signal unless we killed it).
"""

import os
import random
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
for _d in (os.path.join(TOP, "tests", "fixtures"),
           os.path.join(TOP, "tests", "integration")):
    if _d not in sys.path:
        sys.path.insert(0, _d)

import haulfix  # noqa: E402
from haulfix import Dovecot, make_message  # noqa: E402
import hauldrun  # noqa: E402
from hauldrun import Hauld, SmtpSink, header, lda_script  # noqa: E402
from imaprun import expected_form, imap_account, strip_prepended  # noqa

RUN_TIMEOUT = 25          # one hauld run, seconds
IDLE_MISS_S = 10          # an idling hauld that was not killed by then
SETTLE_S = 0.05           # poll step while the sinks settle after a kill
LMTP_RCPTS = ("r1", "r2", "r3")
SOURCES = ("src",)
PASSWORDS = {u: "Crash-%s-pw-Kq3v9" % u for u in SOURCES + LMTP_RCPTS}

# ---------------------------------------------------------------------------
# The kill points (docs/delivery-guarantees.md maps them to steps S0..S11).
# Each entry: name, steps, and where it applies.

POINTS = [
    # S0 connect / TLS / auth
    ("fetch.connected", "S0", "all"),
    ("fetch.mailbox", "S0", "all"),         # authenticated, mailbox open
    # S1 listing
    ("fetch.listed", "S1", "all"),
    # S2 fetch start, S3 fetch complete (spooled)
    ("fetch.begin", "S2", "all"),
    ("fetch.spooled", "S3", "all"),
    # S4..S6 towards the MTA (bytes handed to the connection / written)
    ("smtp.queued.ENVELOPE", "S4", "smtp"),     # MAIL/RCPT (+DATA) queued
    ("smtp.sent.ENVELOPE", "S4", "smtp"),
    ("smtp.queued.BODY", "S5", "smtp"),         # message bytes queued
    ("smtp.queued.FINAL", "S6", "smtp"),        # final dot / BDAT LAST
    ("smtp.sent.FINAL", "S6", "smtp"),          # ... written to the socket
    # S7 the MTA's reply (LMTP: each readable event, recipient by recipient)
    ("smtp.reply.FINAL", "S7", "smtp"),
    ("lda.started", "S4", "lda"),
    ("lda.exited", "S7", "lda"),
    ("deliver.accepted", "S7", "all"),
    # S8 record appended, commit, durable
    ("store.accepted", "S8", "all"),
    ("store.commit", "S8", "all"),
    ("store.durable", "S8", "all"),
    ("fetch.durable", "S8", "all"),
    # S9 delete requested, S10 committed by the server, S11 removal
    ("fetch.delete_sent", "S9", "delete"),
    ("fetch.quit_sent", "S9", "pop3"),
    ("fetch.delete_committed", "S10", "delete"),
]
# Which kills may duplicate is not a property of the point: with pipelining
# a kill at any step can catch another message between its end of data and
# its commit.  Lab._run() therefore attributes duplicates per message.


def applies(point, proto, dmode, keep):
    """Whether point can be reached in this shape."""
    where = next(p[2] for p in POINTS if p[0] == point)
    if where == "smtp":
        return dmode in ("smtp", "lmtp")
    if where == "lda":
        return dmode == "lda"
    if where == "delete":
        return not keep
    if where == "pop3":
        return proto == "pop3"
    return True


# ---------------------------------------------------------------------------
# messages


def seed_messages(n, base, rng):
    """n messages with unique Message-IDs and the awkward shapes: an empty
    body, bare LF and CRLF files, '.'-leading lines, a 300 KB message
    (hauld's spool spills it to disk)."""
    out = []
    for i in range(n):
        k = i % 5
        num = base + i
        to = "src@remote.test"
        if k == 0:
            m = make_message(num, body="", to=to)
        elif k == 1:
            m = make_message(num, size=rng.choice((400, 1500, 3000)),
                             crlf=False, tricky=True, to=to)
        elif k == 2:
            m = make_message(num, size=rng.choice((800, 2500)), crlf=True,
                             tricky=True, to=to)
        elif k == 3:
            # above hauld's 256 KiB pump budget: the body goes out in
            # several writes (smtp.queued.BODY), the spool spills to disk
            m = make_message(num, size=300 * 1024,
                             crlf=rng.random() < 0.5, to=to)
        else:
            m = make_message(num, body=".\n..\n.x\nend\n", to=to)
        out.append(m)
    return out


def mid_of(data):
    return header(data, "Message-ID")


# ---------------------------------------------------------------------------
# results


class Scenario:
    """proto: pop3, imap, idle; dmode: smtp, lmtp, lda; keep: bool.
    kill: (point, n) | ("random", [delays]) | None; fault: a
    HAUL_FAULT_STORE spec or None; nmsgs: messages seeded."""

    def __init__(self, proto, dmode, keep, kill=None, fault=None, nmsgs=4,
                 seed=0):
        self.proto, self.dmode, self.keep = proto, dmode, keep
        self.kill, self.fault, self.nmsgs, self.seed = kill, fault, nmsgs, seed

    @property
    def kind(self):
        if self.kill is None and not self.fault:
            return "none"
        if self.fault:
            return "fault"
        if self.kill and self.kill[0] == "random":
            return "random"
        if self.kill and self.kill[0] == "*":
            return "aimed"
        return "point"

    def __str__(self):
        k = self.fault or (
            "random x%d" % len(self.kill[1]) if self.kind == "random" else
            "%s:%s" % self.kill if self.kill else "none")
        return "%s/%s/%s %s" % (self.proto, self.dmode,
                                "keep" if self.keep else "delete", k)


class Result:
    def __init__(self, sc):
        self.sc = sc
        self.problems = []       # invariant violations (real failures)
        self.misconfig = None    # the kill never happened, and why
        self.kills = 0           # SIGKILLs that struck
        self.faults = 0          # store faults that fired
        self.dups = 0            # extra copies (all allowed ones)
        self.partial = 0         # copies not byte-exact at the end ("cut")
        self.runs = 0
        self.first_run_s = 0.0   # the first undisturbed run's duration
        self.first_hits = {}     # {point: hits} in that run
        self.kill = sc.kill      # the kill as resolved (point, n)
        self.skipped = False     # a "mid" kill with no second hit
        self.elapsed = 0.0
        self.log = []            # notes for a failure report

    @property
    def ok(self):
        return not self.problems and self.misconfig is None

    def fail(self, msg):
        self.problems.append(msg)

    def __str__(self):
        s = "%s: %s" % (self.sc, "ok" if self.ok else "FAIL")
        if self.misconfig:
            s += " (misconfigured: %s)" % self.misconfig
        for p in self.problems:
            s += "\n  - " + p
        return s


# ---------------------------------------------------------------------------
# the lab: shared fixtures


class Lab:
    def __init__(self, hauld, workdir, verbose=False):
        self.hauld = hauld
        self.workdir = workdir
        self.verbose = verbose
        self.dovecot = None
        self.sink = None
        self.n = 0
        self.base = 1000
        self.lda_dir = os.path.join(workdir, "lda")
        self.spans = {}
        self.strict_lda = True      # a cut LDA copy fails the scenario

    def start(self):
        os.chmod(self.workdir, 0o755)   # smtp-sink runs as nobody
        self.dovecot = Dovecot(users=PASSWORDS)
        self.dovecot.start()
        self.sink = SmtpSink(os.path.join(self.workdir, "sink"))
        self.sink.start()
        for sub in ("tmp", "new"):
            os.makedirs(os.path.join(self.lda_dir, sub), exist_ok=True)
        # The LDA: write to tmp/, rename into new/ (atomic, like maildir);
        # exit 75 (tempfail) on any error.
        self.lda = lda_script(os.path.join(self.workdir, "lda.sh"), """
t="%s/tmp/$$.$(date +%%s%%N)"
cat > "$t" || exit 75
mv "$t" "%s/new/" || exit 75
exit 0
""" % (self.lda_dir, self.lda_dir))
        # hauld drops to an unprivileged user when run as root: its LDA
        # child must be able to write there
        if hasattr(hauldrun, "grant"):
            hauldrun.grant(self.lda_dir)
        return self

    def close(self):
        if self.sink is not None:
            self.sink.stop()
            self.sink = None
        if self.dovecot is not None:
            self.dovecot.close()
            self.dovecot = None

    # -- mailboxes --------------------------------------------------------

    def reset_source(self, user):
        with self.dovecot.imap_session(user) as c:
            typ, data = c.select("INBOX")
            assert typ == "OK", data
            if int(data[0]) > 0:
                c.store("1:*", "+FLAGS.SILENT", "(\\Deleted)")
                c.expunge()

    def reset_sinks(self):
        self.sink.clear()
        for sub in ("new", "tmp"):
            d = os.path.join(self.lda_dir, sub)
            for n in os.listdir(d):
                os.unlink(os.path.join(d, n))
        for u in LMTP_RCPTS:
            for p in self.dovecot.maildir_files(u):
                os.unlink(p)

    def server_state(self, user):
        """{Message-ID: flags bytes} of the messages on the server."""
        out = {}
        with self.dovecot.imap_session(user) as c:
            typ, data = c.select("INBOX", readonly=True)
            assert typ == "OK", data
            if int(data[0]) == 0:
                return out
            typ, data = c.uid("FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER."
                              "FIELDS (MESSAGE-ID)])")
            assert typ == "OK", data
            for item in data:
                if not isinstance(item, tuple):
                    continue
                m = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                out[header(item[1], "Message-ID")] = m.group(1) if m \
                    else b""
        return out

    def copies(self, dmode, expected):
        """{box: {Message-ID: exact copies}} and the number of copies
        that are not byte-exact (aborted smtp-sink transactions)."""
        boxes = {}
        bad = 0
        if dmode == "smtp":
            datas = {"sink": [(d, True) for d in self.sink.dumps()]}
        elif dmode == "lmtp":
            datas = {}
            for u in LMTP_RCPTS:
                datas[u] = []
                for p in self.dovecot.maildir_files(u):
                    with open(p, "rb") as f:
                        datas[u].append((f.read(), False))
        else:
            datas = {"lda": []}
            d = os.path.join(self.lda_dir, "new")
            for n in sorted(os.listdir(d)):
                with open(os.path.join(d, n), "rb") as f:
                    datas["lda"].append((f.read(), False))
        for box, items in datas.items():
            got = boxes.setdefault(box, {})
            for data, is_dump in items:
                rest = strip_prepended(data)[2]
                if is_dump and rest.endswith(b"\r\n\r\n"):
                    rest = rest[:-2]        # smtp-sink's trailing line
                mid = mid_of(rest)
                if mid in expected and rest == expected[mid]:
                    got[mid] = got.get(mid, 0) + 1
                else:
                    bad += 1
        return boxes, bad

    def settle(self, dmode, expected, limit=3.0):
        """Copies once the sinks stopped changing (the MTA may still be
        finishing a message when hauld dies)."""
        end = time.monotonic() + limit
        prev = self.copies(dmode, expected)
        while time.monotonic() < end:
            time.sleep(SETTLE_S * 2)
            cur = self.copies(dmode, expected)
            if cur == prev:
                return cur
            prev = cur
        return prev

    # -- hauld ------------------------------------------------------------

    def configure(self, sc, dir):
        h = Hauld(self.hauld, dir)
        d = self.dovecot
        if sc.dmode == "smtp":
            h.smtp(self.sink.port)
            rcpt = ["src@local.test"]
        elif sc.dmode == "lmtp":
            h.smtp(d.lmtp_port, mode="lmtp")
            rcpt = ["%s@local.test" % u for u in LMTP_RCPTS]
        else:
            h.lda([self.lda])
            rcpt = ["src@local.test"]
        common = {"host": "localhost", "user": "src", "tls": "implicit",
                  "ca_file": d.ca_file, "keep": sc.keep,
                  "deliver_to": rcpt, "timeout": 10}
        if sc.proto == "pop3":
            h.account("acct", password=PASSWORDS["src"], protocol="pop3",
                      port=d.pop3s_port, **common)
        else:
            imap_account(h, "acct", PASSWORDS["src"], port=d.imaps_port,
                         idle=(sc.proto == "idle"), poll_interval=3600,
                         **common)
        if sc.proto == "idle":
            h.global_opts["control_socket"] = os.path.join(dir, "ctl.sock")
        return h

    def durable(self, h):
        """Message-IDs the store holds as accepted/removed, read from a
        copy of its files (hauld's own recovery must not be pre-empted)."""
        src = h.state_dir
        if not os.path.exists(os.path.join(src, "haul.db")):
            return set()
        tmp = tempfile.mkdtemp(prefix="crash-db-", dir=self.workdir)
        try:
            for n in ("haul.db", "haul.db-wal"):
                p = os.path.join(src, n)
                if os.path.exists(p):
                    shutil.copyfile(p, os.path.join(tmp, n))
            db = sqlite3.connect(os.path.join(tmp, "haul.db"))
            try:
                rows = db.execute("SELECT message_id FROM msg WHERE state "
                                  "IN ('accepted', 'removed')").fetchall()
            except sqlite3.OperationalError:
                rows = []       # a fault struck before the schema existed
            finally:
                db.close()
            return {r[0].strip() for r in rows if r[0]}
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def env(self, **extra):
        e = dict(os.environ)
        for k in ("HAUL_KILLPOINT", "HAUL_KILLPOINT_TRACE",
                  "HAUL_FAULT_STORE"):
            e.pop(k, None)
        e.update(extra)
        return e

    def spawn(self, h, sc, env):
        """Start hauld (-1, or -f for IDLE); returns (Popen, log path)."""
        h.write()
        log = os.path.join(h.dir, "hauld.%d.log" % len(os.listdir(h.dir)))
        argv = [h.binary, "-f" if sc.proto == "idle" else "-1", "-d", "-c",
                h.conf]
        f = open(log, "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f,
                             stderr=f, env=env, start_new_session=True)
        f.close()
        if sc.proto == "idle":
            self.kick(h, p)
        return p, log

    def kick(self, h, p):
        """A daemon polls after a random delay: ask for the fetch now
        (haulctl fetch), once its control socket is up."""
        sock = h.global_opts["control_socket"]
        end = time.monotonic() + 10
        while not os.path.exists(sock):
            if p.poll() is not None or time.monotonic() > end:
                return
            time.sleep(0.01)
        ctl = os.path.join(os.path.dirname(h.binary), "haulctl")
        # the socket file can exist a moment before hauld accepts on it
        for _ in range(50):
            r = subprocess.run([ctl, "-s", sock, "fetch", "acct"],
                               stdin=subprocess.DEVNULL, capture_output=True,
                               timeout=10)
            if r.returncode == 0 or p.poll() is not None:
                return
            time.sleep(0.05)

    @staticmethod
    def wait(p, t):
        try:
            return p.wait(t)
        except subprocess.TimeoutExpired:
            return None

    @staticmethod
    def kill(p):
        try:
            os.kill(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return p.wait(10)

    @staticmethod
    def read(path):
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, p, log, pattern, t):
        """Until log matches pattern (True) or hauld exits / t passes."""
        end = time.monotonic() + t
        while time.monotonic() < end:
            if re.search(pattern, self.read(log), re.M):
                return True
            if p.poll() is not None:
                return False
            time.sleep(0.02)
        return False

    def push(self, user, msgs):
        """APPEND msgs in one IMAP session (wakes an idling hauld)."""
        with self.dovecot.imap_session(user) as c:
            for m in msgs:
                typ, resp = c.append("INBOX", None, None, m)
                assert typ == "OK", resp

    def profile(self, sc):
        """(seconds, {point: hits}) of an undisturbed `hauld -1` of this
        shape (one traced calibration run per protocol, mode, keep and
        size): random kills fall uniformly inside it, "mid" and aimed
        kills pick a hit that is reached."""
        key = ("imap" if sc.proto == "idle" else sc.proto, sc.dmode,
               sc.keep, sc.nmsgs)
        if key not in self.spans:
            r = Result(sc)
            self._run(Scenario(key[0], sc.dmode, sc.keep, nmsgs=sc.nmsgs),
                      r)
            if r.problems:
                raise RuntimeError("calibration run failed: %s" % r)
            self.spans[key] = (max(0.1, r.first_run_s), r.first_hits)
        return self.spans[key]

    def resolve(self, sc, rng):
        """The concrete kill of a scenario: "mid" -> a later hit (half
        the point's hits in a clean run, at least the second); ("*", None) -> a uniformly random hit of
        any point (HAUL_KILLPOINT=*:N).  None if the point is not hit
        twice (its "mid" would repeat hit 1)."""
        point, nth = sc.kill
        if nth == "mid":
            n = self.profile(sc)[1].get(point, 0)
            if n < 2:
                return None
            # Group commits batch differently from run to run (and IDLE
            # from the one-shot profile): half the clean run's hits, at
            # least the second, is a later hit every run reaches
            return (point, 2 if sc.proto == "idle" else max(2, n // 2))
        if point == "*" and nth is None:
            total = sum(self.profile(sc)[1].values())
            return ("*", rng.randint(1, max(1, total)))
        return sc.kill

    # -- one scenario -----------------------------------------------------

    def run(self, sc):
        t0 = time.monotonic()
        res = Result(sc)
        try:
            self._run(sc, res)
        except Exception as e:      # a harness error fails the scenario
            res.fail("harness error: %r" % e)
        res.elapsed = time.monotonic() - t0
        return res

    def _run(self, sc, res):
        # calibrate first: the calibration run resets the mailboxes
        span = self.profile(sc)[0] if sc.kind == "random" else 0
        kill = sc.kill
        if sc.kind in ("point", "aimed"):
            kill = self.resolve(sc, random.Random(sc.seed * 31 + self.n))
            if kill is None:
                res.skipped = True
                return
            res.kill = kill
        self.n += 1
        rng = random.Random(sc.seed * 7919 + self.n)
        dir = os.path.join(self.workdir, "s%05d" % self.n)
        os.makedirs(dir)
        self.reset_source("src")
        self.reset_sinks()
        msgs = seed_messages(sc.nmsgs, self.base, rng)
        self.base += sc.nmsgs
        expected = {mid_of(m): expected_form(m) for m in msgs}
        assert len(expected) == len(msgs), "Message-IDs not unique"
        if sc.proto != "idle":
            self.dovecot.seed("src", msgs)
        h = self.configure(sc, dir)
        # history: per hard-stopped run, copies before/after and durable
        orphans = {}            # (box, mid) -> runs that orphaned a copy
        before, _ = self.copies(sc.dmode, expected)
        trace = os.path.join(dir, "trace")
        pushed = sc.proto != "idle"

        def account_orphans(prev, cur, dur):
            for box, got in cur.items():
                for mid, n in got.items():
                    new = n - prev.get(box, {}).get(mid, 0)
                    if new > 0 and mid not in dur:
                        orphans[(box, mid)] = orphans.get((box, mid), 0) + 1

        # 1. the disturbed run(s)
        if sc.kind in ("point", "aimed"):
            point, nth = kill
            env = self.env(HAUL_KILLPOINT="%s:%d" % (point, nth),
                           HAUL_KILLPOINT_TRACE=trace)
            p, log = self.spawn(h, sc, env)
            if not pushed:
                self.wait_log(p, log, r"imap: C: \S+ IDLE$", 10)
                self.push("src", msgs)
                pushed = True
            # a daemon that missed its kill point idles on: give up sooner
            rc = self.wait(p, IDLE_MISS_S if sc.proto == "idle" else
                           RUN_TIMEOUT)
            res.runs += 1
            if rc is None:
                self.kill(p)
                rc = "timeout"
            hits = [ln.split() for ln in open(trace).read().splitlines()] \
                if os.path.exists(trace) else []
            if rc != -signal.SIGKILL and point == "*":
                # the run took fewer steps than the calibration run: an
                # undisturbed run; the restarts below check it all the same
                res.log.append("aimed kill *:%d missed (%d hits)" % (
                    nth, len(hits)))
            elif rc != -signal.SIGKILL:
                reached = sorted({x[0] for x in hits})
                res.misconfig = "hauld %s without the kill (point %s:%d " \
                    "%s; points reached: %s)" % (
                        "exited %s" % rc if rc != "timeout" else
                        "timed out", point, nth,
                        "reached %d times" % sum(1 for x in hits
                                                 if x[0] == point),
                        " ".join(reached))
                return
            elif point == "*" and len(hits) != nth:
                res.fail("killed, but the trace has %d hits, not %d" % (
                    len(hits), nth))
            elif point != "*" and (not hits or hits[-1] != [point,
                                                           str(nth)]):
                res.fail("killed, but the trace does not end at %s %d: %r"
                         % (point, nth, hits[-3:]))
            if rc == -signal.SIGKILL:
                res.kills += 1
            cur, res.partial = self.settle(sc.dmode, expected)
            dur = self.durable(h)
            account_orphans(before, cur, dur)
            self.check_server(sc, res, expected, dur, "after the kill")
            before = cur
        elif sc.kind == "random":
            for frac in sc.kill[1]:
                delay = max(0.01, frac * span)
                p, log = self.spawn(h, sc, self.env())
                if not pushed:
                    self.wait_log(p, log, r"imap: C: \S+ IDLE$", 10)
                    self.push("src", msgs)
                    pushed = True
                rc = self.wait(p, delay)
                res.runs += 1
                if rc is None:
                    rc = self.kill(p)
                    res.kills += 1
                elif rc < 0:
                    res.fail("hauld died by signal %d (not ours)\n%s"
                             % (-rc, self.read(log)[-1500:]))
                cur, part = self.settle(sc.dmode, expected)
                res.partial += part
                dur = self.durable(h)
                account_orphans(before, cur, dur)
                self.check_server(sc, res, expected, dur, "after a kill")
                before = cur
        elif sc.kind == "fault":
            env = self.env(HAUL_FAULT_STORE=sc.fault)
            if sc.proto == "idle":
                # a daemon would keep going after the fault (the store is
                # reopened); the fault tests use one-shot runs
                raise ValueError("fault scenarios use pop3/imap")
            p, log = self.spawn(h, sc, env)
            rc = self.wait(p, RUN_TIMEOUT)
            res.runs += 1
            text = self.read(log)
            if rc is None:
                self.kill(p)
                res.fail("hauld hung after the store fault %s" % sc.fault)
            elif rc < 0:
                res.fail("hauld died by signal %d on fault %s\n%s" % (
                    -rc, sc.fault, text[-1500:]))
            if re.search(r"store commit:|could not commit|cannot open the "
                         r"UID store|UID store failed|cannot record|"
                         r"store: .*(I/O|disk|full)", text, re.I):
                res.faults += 1
            else:
                res.misconfig = "fault %s never fired" % sc.fault
            cur, res.partial = self.settle(sc.dmode, expected)
            dur = self.durable(h)
            account_orphans(before, cur, dur)
            self.check_server(sc, res, expected, dur, "after the fault")
            before = cur
        if not pushed:
            self.push("src", msgs)

        # 2. restart until done (one-shot runs, no disturbance)
        done = False
        for attempt in range(4):
            ptrace = os.path.join(dir, "trace.clean")
            p, log = self.spawn(h, Scenario("pop3" if sc.proto == "pop3"
                                            else "imap", sc.dmode, sc.keep),
                                self.env(HAUL_KILLPOINT_TRACE=ptrace)
                                if attempt == 0 else self.env())
            t1 = time.monotonic()
            rc = self.wait(p, RUN_TIMEOUT)
            res.runs += 1
            if attempt == 0:
                res.first_run_s = time.monotonic() - t1
                if os.path.exists(ptrace):
                    for ln in open(ptrace).read().splitlines():
                        name = ln.split()[0]
                        res.first_hits[name] = \
                            res.first_hits.get(name, 0) + 1
            text = self.read(log)
            if rc is None:
                self.kill(p)
                res.fail("restart %d timed out\n%s" % (attempt + 1,
                                                        text[-1500:]))
                break
            if rc < 0 or rc not in (0, 1):
                res.fail("restart %d: exit %d\n%s" % (attempt + 1, rc,
                                                       text[-1500:]))
                break
            if re.search(r"cannot open the UID store|cannot reopen", text):
                res.fail("the store did not open on restart %d:\n%s" % (
                    attempt + 1, text[-1500:]))
                break
            cur, part = self.copies(sc.dmode, expected)
            dur = self.durable(h)
            # an undisturbed run orphans nothing: every copy it made must
            # be durable (else a later run duplicates it)
            for box, got in cur.items():
                for mid, n in got.items():
                    if n > before.get(box, {}).get(mid, 0) and \
                            mid not in dur:
                        res.fail("restart %d delivered %s to %s but did "
                                 "not record it" % (attempt + 1, mid, box))
            before = cur
            self.check_server(sc, res, expected, dur, "after restart %d" %
                              (attempt + 1))
            all_in = all(len(cur.get(b, {})) == len(expected) for b in
                         self.boxes(sc.dmode))
            if all_in and (sc.keep or not self.server_state("src")):
                done = True
                break
            res.log.append("restart %d not done:\n%s" % (attempt + 1,
                                                          text[-800:]))
        # 3. the invariants
        cur, part = self.copies(sc.dmode, expected)
        res.partial = part
        if part and (sc.dmode == "lmtp" or
                     (sc.dmode == "lda" and self.strict_lda)):
            # smtp-sink dumps aborted transactions too; Dovecot's LMTP
            # stores only complete messages, and the LDA reads a whole
            # message file, so a cut copy there is a failure
            # (docs/delivery-guarantees.md; --lenient-lda only counts it)
            res.fail("%d delivered copies are not byte-exact (truncated "
                     "or altered)" % part)
        for box in self.boxes(sc.dmode):
            got = cur.get(box, {})
            for mid in expected:
                n = got.get(mid, 0)
                if n == 0:
                    res.fail("LOST: %s never reached %s" % (mid, box))
                allowed = 1 + orphans.get((box, mid), 0)
                if n > allowed:
                    res.fail("DUPLICATE beyond the window: %s has %d "
                             "copies in %s, allowed %d" % (mid, n, box,
                                                           allowed))
                if n > 1:
                    res.dups += n - 1
        srv = self.server_state("src")
        if sc.keep:
            for mid in expected:
                if mid not in srv:
                    res.fail("keep=yes, but %s was deleted" % mid)
                # POP3 has no PEEK: Dovecot flags what RETR read \Seen
                elif re.search(rb"\\Deleted" if sc.proto == "pop3" else
                               rb"\\(Seen|Deleted)", srv[mid]):
                    res.fail("keep=yes, but %s has flags %r" % (
                        mid, srv[mid]))
        elif srv:
            res.fail("delete: %d messages still on the server after the "
                     "final run" % len(srv))
        if not done and not res.problems:
            res.fail("not done after 4 restarts:\n" + "\n".join(res.log))

    @staticmethod
    def boxes(dmode):
        if dmode == "smtp":
            return ["sink"]
        if dmode == "lmtp":
            return list(LMTP_RCPTS)
        return ["lda"]

    def check_server(self, sc, res, expected, dur, when):
        """Nothing gone from the server that is not durably recorded;
        keep=yes: nothing gone at all."""
        srv = self.server_state("src")
        for mid in expected:
            if mid in srv:
                continue
            if sc.keep:
                res.fail("keep=yes, but %s left the server %s" % (mid,
                                                                  when))
            elif mid not in dur:
                res.fail("%s was deleted on the server %s without a "
                         "durable record" % (mid, when))


# ---------------------------------------------------------------------------
# scenario lists


def point_scenarios(protos, dmodes, keeps, nths=(1,), nmsgs=4, seed=0):
    out = []
    for proto in protos:
        for dmode in dmodes:
            for keep in keeps:
                for name, _, _ in POINTS:
                    if not applies(name, proto, dmode, keep):
                        continue
                    for n in nths:
                        out.append(Scenario(proto, dmode, keep, (name, n),
                                            nmsgs=nmsgs, seed=seed))
    return out


def aimed_scenarios(protos, dmodes, keeps, count, nmsgs=6, seed=2):
    """count kills at a uniformly random hit of any kill point
    (HAUL_KILLPOINT=*:N, N drawn over a clean run's hits)."""
    out = []
    for i in range(count):
        proto = protos[i % len(protos)]
        dmode = dmodes[(i // len(protos)) % len(dmodes)]
        keep = keeps[(i // (len(protos) * len(dmodes))) % len(keeps)]
        out.append(Scenario(proto, dmode, keep, ("*", None), nmsgs=nmsgs,
                            seed=seed + i))
    return out


def fault_scenarios(protos, dmodes, specs, keep=False, nmsgs=4):
    return [Scenario(p, d, keep, fault=f, nmsgs=nmsgs)
            for p in protos for d in dmodes for f in specs]


def random_scenarios(protos, dmodes, keeps, count, kills=3, nmsgs=12,
                     seed=1):
    """count scenarios, each with kills SIGKILLs at uniformly random times
    (fractions of an undisturbed run's duration, see Lab.span())."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        proto = protos[i % len(protos)]
        dmode = dmodes[(i + i // len(protos)) % len(dmodes)]
        # alternate keep within a round and flip it each round, so both
        # keep modes meet every protocol and delivery mode
        per = len(protos) * len(dmodes)
        keep = keeps[(i % per + i // per) % len(keeps)]
        delays = [rng.uniform(0.0, 1.0) for _ in range(kills)]
        out.append(Scenario(proto, dmode, keep, ("random", delays),
                            nmsgs=nmsgs, seed=seed + i))
    return out


def point_summary(results):
    """Per kill point: scenarios, kills, and the extra copies they caused
    (duplicates must come only from points inside the window)."""
    rows = {}
    for r in results:
        if r.sc.kind != "point" or r.skipped:
            continue
        row = rows.setdefault(r.sc.kill[0], [0, 0, 0, 0])
        row[0] += 1
        row[1] += r.kills
        row[2] += r.dups
        row[3] += 1 if r.dups else 0
    step = {p[0]: p[1] for p in POINTS}
    lines = ["%-24s %4s %9s %6s %5s %9s" % ("kill point", "step",
                                             "scenarios", "kills", "dups",
                                             "with dups")]
    for name, _, _ in POINTS:
        if name in rows:
            lines.append("%-24s %4s %9d %6d %5d %9d" % (
                (name, step[name]) + tuple(rows[name])))
    return "\n".join(lines)


def summary(results):
    """A table: per kind/proto/dmode/keep, runs, kills, faults, dups,
    failures."""
    rows = {}
    for r in results:
        if r.skipped:
            continue
        sc = r.sc
        key = (sc.kind, sc.proto, sc.dmode, "keep" if sc.keep else "delete")
        row = rows.setdefault(key, [0, 0, 0, 0, 0, 0, 0, 0])
        row[0] += 1
        row[1] += r.kills
        row[2] += r.faults
        row[3] += r.dups
        row[4] += 0 if r.ok else (1 if r.problems else 0)
        row[5] += 1 if r.misconfig else 0
        row[6] += r.runs
        row[7] += r.partial
    lines = ["%-7s %-5s %-5s %-7s %9s %6s %6s %5s %6s %8s %7s %5s" % (
        "kind", "proto", "mode", "keep", "scenarios", "kills", "faults",
        "dups", "FAILED", "misconf", "hauld", "cut")]
    tot = [0] * 8
    for key in sorted(rows):
        row = rows[key]
        tot = [a + b for a, b in zip(tot, row)]
        lines.append("%-7s %-5s %-5s %-7s %9d %6d %6d %5d %6d %8d %7d %5d"
                     % (key + tuple(row)))
    lines.append("%-27s %9d %6d %6d %5d %6d %8d %7d %5d" % (
        ("total",) + tuple(tot)))
    return "\n".join(lines)
