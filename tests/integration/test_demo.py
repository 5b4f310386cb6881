# ISC License; see LICENSE.
"""`make demo` (demo/demo.py) as CI runs it: the whole demo against this
build, exit 0, the output reports what the demo promises (both accounts
delivered, the push delay, nothing delivered twice, the delete account's
provider mailbox empty), and every process it reported is gone and its
temp dir removed.  Then --keep: everything stays up and answers, --append
pushes a message, --stop takes it all down."""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import haulfix
from haulfix import timeout

TIMEOUT = 150
TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
DEMO = os.path.join(TOP, "demo", "demo.py")
DEMO_TIMEOUT = 120        # the demo itself promises < 60 s


def _need(env):
    haulfix.need_root()
    haulfix.need_binaries("dovecot", "postfix", "postconf", "openssl")
    env.need("hauld", "haul-milter", "haulctl")


def _run(env, *args, limit=DEMO_TIMEOUT):
    """demo.py --build BUILD ARGS; returns (rc, output, seconds).  Output
    goes through a file, not a pipe (nothing may hold it open).  On a
    timeout (ours or the harness's) the demo gets SIGTERM, which makes it
    stop what it started, then SIGKILL."""
    e = dict(os.environ)
    e.pop("KEEP", None)
    argv = [sys.executable, DEMO, "--build", env.build] + list(args)
    with tempfile.TemporaryFile() as out:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, env=e, cwd=TOP)
        try:
            rc = p.wait(limit)
        except BaseException as exc:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
            out.seek(0)
            text = out.read().decode("utf-8", "replace")
            if isinstance(exc, subprocess.TimeoutExpired):
                raise AssertionError("demo did not finish in %ds:\n%s" % (
                    limit, text[-4000:]))
            raise
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
    env.log(text)
    return rc, text, time.monotonic() - t0


def _demo_dir(out):
    m = re.search(r"under \$D=(/\S+)", out)
    assert m, "no demo dir in the output:\n" + out[-3000:]
    return m.group(1)


def _running(pid, dir):
    """pid runs and is one of the demo's (its command line or environment
    names the demo dir), or it leads a process group that still has
    members (Dovecot's and Postfix's children)."""
    haulfix._reap(pid)
    if haulfix._alive(pid) and haulfix._proc_mentions(pid, dir):
        return True
    return bool(haulfix._group_members(pid))


def _processes_of(dir):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid() and \
                haulfix._alive(int(name)) and \
                haulfix._proc_mentions(int(name), dir):
            out.append(int(name))
    return out


def _count(pattern, out, what):
    m = re.search(pattern, out, re.M)
    assert m, "no %s line in the output:\n%s" % (what, out[-4000:])
    return m


@timeout(TIMEOUT)
def test_demo_runs_and_cleans_up(env):
    _need(env)
    rc, out, took = _run(env)
    assert rc == 0, "demo exit %d:\n%s" % (rc, out[-5000:])
    d = _demo_dir(out)
    assert out.rstrip().splitlines()[-1].startswith("demo OK in "), out[-2000:]
    env.log("demo took %.1fs" % took)

    seeded = {}
    for user, proto in (("jane", "IMAP"), ("jdoe", "POP3")):
        seeded[user] = int(_count(r"^\s+%s\s+%s\s+(\d+) messages" % (
            user, proto), out, "seeded " + user).group(1))
        assert seeded[user] >= 100, seeded
    # the initial fetch: every message delivered, per account
    for acct, proto, user in (("work-imap", "imap", "jane"),
                              ("isp-pop3", "pop3", "jdoe")):
        m = _count(r"^\s+%s\s+%s\s.*\s(\d+)/(\d+)\s+(\d+)\s+[\d.]+s$" % (
            acct, proto), out, "initial fetch of " + acct)
        assert int(m.group(3)) == seeded[user], (acct, m.group(0))
        assert int(m.group(1)) == int(m.group(2)) == seeded[user], \
            m.group(0)
    for local, user in (("alice", "jane"), ("bob", "jdoe")):
        m = _count(r"^\s+%s@local\.test\s+(\d+) messages" % local, out,
                   local + "'s mailbox")
        assert int(m.group(1)) == seeded[user], m.group(0)
    # the delivered message's header: tagged, traced, no token
    assert re.search(r"^\s+X-Haul-Account: work-imap$", out, re.M), out
    assert re.search(r"^\s+X-Haul-Trace: account=work-imap; mailbox=INBOX;",
                     out, re.M), out
    assert not re.search(r"^\s+X-Haul-Token:", out, re.M), out
    # push
    m = _count(r"push delay: (\d+\.\d+)s", out, "push delay")
    assert float(m.group(1)) < 10, m.group(0)
    # second pass
    for acct in ("work-imap", "isp-pop3"):
        _count(r"^\s+%s\s+delivered 0\s" % acct, out, acct + " second pass")
    _count(r"provider jane\s+%d\s" % (seeded["jane"] + 1), out,
           "jane still has everything")
    _count(r"provider jdoe\s+0\s", out, "jdoe's mailbox empty")
    assert "delivered nothing twice" in out, out[-3000:]
    assert "delete account's provider mailbox is empty" in out, out[-3000:]
    # nothing left
    assert "no process left" in out, out[-3000:]
    pids = sorted({int(p) for p in re.findall(r"\bpid (\d+)", out)})
    assert len(pids) >= 5, pids     # 2 hauld, milter, Postfix, Dovecot
    left = [p for p in pids if _running(p, d)]
    assert not left, "still running: %s" % left
    assert not _processes_of(d), "processes of %s: %s" % (
        d, _processes_of(d))
    assert not os.path.exists(d), "demo dir %s left behind" % d


@timeout(TIMEOUT)
def test_demo_keep_append_stop(env):
    """--keep leaves it all running (haulctl answers, IDLE still pushes);
    --stop stops every process by PID and removes the dir."""
    _need(env)
    rc, out, _ = _run(env, "--keep")
    d = _demo_dir(out) if "under $D=" in out else None
    try:
        assert rc == 0, "demo --keep exit %d:\n%s" % (rc, out[-5000:])
        m = _count(r"processes\s+hauld (\d+), haul-milter (\d+), Postfix "
                   r"master (\d+), Dovecot master (\d+)", out, "processes")
        pids = [int(x) for x in m.groups()]
        for pid in pids:
            assert haulfix._alive(pid), "pid %d is not running" % pid
        assert "--stop" in out
        r = subprocess.run([env.haulctl, "-c", os.path.join(d, "haul.conf"),
                            "status", "--json"], capture_output=True,
                           text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        st = {a["name"]: a for a in json.loads(r.stdout)["accounts"]}
        assert st["work-imap"]["state"] == "idling", st
        assert st["isp-pop3"]["state"] == "idle", st
        r = subprocess.run([sys.executable, DEMO, "--append", d],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and "pushed: in alice@local.test" in \
            r.stdout, r.stdout + r.stderr
    finally:
        if d is not None and os.path.exists(os.path.join(d, "demo.json")):
            r = subprocess.run([sys.executable, DEMO, "--stop", d],
                               capture_output=True, text=True, timeout=90)
            stop_out = r.stdout + r.stderr
        else:
            r, stop_out = None, ""
    assert r is not None and r.returncode == 0, stop_out
    for pid in pids:
        haulfix._reap(pid)   # they were re-parented to us (subreaper)
        assert not _running(pid, d), "pid %d survived --stop" % pid
    assert not _processes_of(d), _processes_of(d)
    assert not os.path.exists(d), "--stop left %s" % d
