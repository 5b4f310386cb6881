# ISC License; see LICENSE.
"""hauld as a daemon: control socket and haulctl (status, JSON, fetch,
pause/resume, metrics), SIGTERM with a message in flight, and
delete_after_days with keep.  Uses the fake POP3 server and smtp-sink."""

import json
import os
import re
import signal
import socket
import subprocess
import time

import fakepki
from fakepop3 import FakePOP3, sample_messages
from haulfix import timeout
from hauldrun import Hauld, SmtpSink

TIMEOUT = 90


def setup_module(env):
    env.pki = fakepki.make_pki(os.path.join(env.tmpdir, "pki"))


def _hauld(env, srv, sink, **acct):
    h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "h"))
    h.global_opts["control_socket"] = os.path.join(h.dir, "ctl.sock")
    h.smtp(sink.port)
    opts = dict(host="localhost", port=srv.port, tls="implicit",
                ca_file=env.pki.ca_cert, user="u", keep=True,
                deliver_to=["alice@local.test"], poll_interval=3600)
    opts.update(acct)
    h.account("acme", password="p", **opts)
    return h


class Daemon:
    def __init__(self, h, env=None):
        self.h = h
        h.write()
        self.log = open(os.path.join(h.dir, "hauld.log"), "w+")
        self.proc = subprocess.Popen([h.binary, "-f", "-c", h.conf],
                                     stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     env=env)
        sock = h.global_opts["control_socket"]
        end = time.monotonic() + 10
        while not os.path.exists(sock):
            assert self.proc.poll() is None, self.text()
            assert time.monotonic() < end, "no control socket"
            time.sleep(0.02)

    def ctl(self, *args):
        return subprocess.run([os.path.join(os.path.dirname(self.h.binary),
                               "haulctl"), "-s",
                               self.h.global_opts["control_socket"]] +
                              list(args), capture_output=True, text=True,
                              timeout=20)

    def status(self):
        r = self.ctl("status", "--json")
        assert r.returncode == 0, r.stderr
        return {a["name"]: a for a in json.loads(r.stdout)["accounts"]}

    def wait(self, pred, what, t=20):
        end = time.monotonic() + t
        while time.monotonic() < end:
            st = self.status()
            if pred(st):
                return st
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s: %s\n%s" %
                             (what, st, self.text()))

    def text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log.name) as f:
            return f.read()

    def stop(self, sig=signal.SIGTERM, t=30):
        self.proc.send_signal(sig)
        rc = self.proc.wait(t)
        self.log.close()
        text = self.text()
        for mark in ("Sanitizer", "runtime error:"):
            assert mark not in text, "sanitizer report:\n" + text[-3000:]
        return rc


@timeout(60)
def test_haulctl_status_fetch_pause_metrics(env):
    with FakePOP3(sample_messages(20), users={"u": "p"}, tls="implicit",
                  certfile=env.pki.cert, keyfile=env.pki.key) as srv, \
            SmtpSink(os.path.join(env.tmpdir, "sink")) as sink:
        d = Daemon(_hauld(env, srv, sink))
        try:
            st = d.status()["acme"]
            assert st["protocol"] == "pop3"
            assert st["state"] == "idle" and st["delivered"] == 0
            assert 0 <= st["next_poll_in"] <= 3600
            table = d.ctl("status")
            assert table.returncode == 0
            assert table.stdout.splitlines()[0].split()[:3] == \
                ["ACCOUNT", "PROTO", "STATE"]
            assert "acme" in table.stdout
            r = d.ctl("fetch", "acme")
            assert r.returncode == 0, r.stderr
            st = d.wait(lambda s: s["acme"]["delivered"] == 20 and
                        s["acme"]["state"] == "idle", "20 delivered")
            assert st["acme"]["last_success"] is not None
            assert st["acme"]["bytes"] > 0
            assert len(sink.dumps()) == 20
            # pause: a fetch request is ignored while paused
            assert d.ctl("pause", "acme").returncode == 0
            assert d.status()["acme"]["state"] == "paused"
            srv.add_message(sample_messages(21)[20])
            assert d.ctl("resume", "acme").returncode == 0
            d.wait(lambda s: s["acme"]["delivered"] == 21, "resume polls")
            # unknown account and command are errors
            r = d.ctl("fetch", "nosuch")
            assert r.returncode == 1 and "no such account" in r.stderr
            m = d.ctl("metrics")
            assert m.returncode == 0
            assert 'haul_messages_delivered_total{account="acme"} 21' in \
                m.stdout
            for line in m.stdout.splitlines():
                # counters are integers; a histogram's _sum is seconds
                assert line.startswith("#") or \
                    re.fullmatch(r"\d+(\.\d+)?", line.split()[-1]), line
        finally:
            rc = d.stop()
        assert rc == 0, d.text()
        assert not os.path.exists(d.h.global_opts["control_socket"])


@timeout(60)
def test_sigterm_with_a_message_in_flight(env):
    """SIGTERM while the server trickles a message: hauld exits 0 within
    the shutdown bound, nothing half-fetched is delivered or deleted."""
    msgs = sample_messages(3)
    with FakePOP3(msgs, users={"u": "p"}, tls="implicit",
                  certfile=env.pki.cert, keyfile=env.pki.key,
                  slow={"RETR": 0.2}) as srv, \
            SmtpSink(os.path.join(env.tmpdir, "sink")) as sink:
        h = _hauld(env, srv, sink, keep=False)
        h.global_opts["shutdown_timeout"] = 5
        d = Daemon(h)
        try:
            d.ctl("fetch", "acme")
            d.wait(lambda s: s["acme"]["state"] == "fetching", "fetching")
            time.sleep(0.5)
        finally:
            t0 = time.monotonic()
            rc = d.stop()
        assert rc == 0, d.text()
        assert time.monotonic() - t0 < 3, "shutdown took too long"
        assert len(srv.remaining()) == 3, "nothing deleted"
        assert srv.dele_count() == 0
        assert "hauld stopped" in d.text()


@timeout(60)
def test_delete_after_days_with_keep(env):
    """keep + delete_after_days=2: kept while young, deleted once older
    (time moved by the test-only HAUL_TEST_WALL_OFFSET), never
    re-delivered."""
    with FakePOP3(sample_messages(4), users={"u": "p"}, tls="implicit",
                  certfile=env.pki.cert, keyfile=env.pki.key) as srv, \
            SmtpSink(os.path.join(env.tmpdir, "sink")) as sink:
        h = _hauld(env, srv, sink, keep=True, delete_after_days=2)
        r = h.run()
        r.check(h)
        assert r.rc == 0 and len(r.delivered_uids()) == 4
        assert len(srv.remaining()) == 4 and srv.dele_count() == 0
        env1 = dict(os.environ, HAUL_TEST_WALL_OFFSET=str(86400))
        r = h.run(env=env1)
        assert r.rc == 0 and r.delivered_uids() == []
        assert len(srv.remaining()) == 4, "one day old: still kept"
        env3 = dict(os.environ, HAUL_TEST_WALL_OFFSET=str(3 * 86400))
        r = h.run(env=env3)
        assert r.rc == 0, r.tail()
        assert r.delivered_uids() == [], "nothing delivered twice"
        assert len(srv.remaining()) == 0, "old enough: deleted"
        assert len(sink.dumps()) == 4


@timeout(60)
def test_per_host_cap_serialises_sessions(env):
    """max_connections_per_host = 1: three accounts on one server never
    have two sessions at once; all their mail arrives."""
    users = {"u1": "p1", "u2": "p2", "u3": "p3"}
    with FakePOP3(sample_messages(3), users=users, tls="implicit",
                  certfile=env.pki.cert, keyfile=env.pki.key,
                  slow={"RETR": 0.0005}) as srv, \
            SmtpSink(os.path.join(env.tmpdir, "sink")) as sink:
        h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "h"))
        h.global_opts["max_connections_per_host"] = 1
        h.smtp(sink.port)
        for u, pw in users.items():
            h.account(u, password=pw, host="localhost", port=srv.port,
                      tls="implicit", ca_file=env.pki.ca_cert, user=u,
                      keep=True, deliver_to=["alice@local.test"])
        r = h.run()
        r.check(h)
        assert r.rc == 0, r.tail()
        assert len(r.delivered_uids()) == 9, (r.delivered_uids(), r.tail())
        spans = {}
        for ln in srv.transcript:
            lo, hi = spans.get(ln.conn, (ln.mono, ln.mono))
            spans[ln.conn] = (min(lo, ln.mono), max(hi, ln.mono))
        assert len(spans) == 3, spans
        order = sorted(spans.values())
        for (a0, a1), (b0, b1) in zip(order, order[1:]):
            assert a1 <= b0, "two sessions overlapped: %s" % order


@timeout(30)
def test_sighup_does_not_stop_hauld(env):
    """SIGHUP reloads (tests/integration/test_reload.py), never kills:
    with the file unchanged, the account carries on untouched."""
    with FakePOP3(sample_messages(1), users={"u": "p"}, tls="implicit",
                  certfile=env.pki.cert, keyfile=env.pki.key) as srv, \
            SmtpSink(os.path.join(env.tmpdir, "sink")) as sink:
        d = Daemon(_hauld(env, srv, sink))
        try:
            d.proc.send_signal(signal.SIGHUP)
            time.sleep(0.3)
            assert d.proc.poll() is None, "SIGHUP stopped hauld"
            assert d.status()["acme"]["state"] == "idle"
        finally:
            rc = d.stop()
        assert rc == 0
        assert "reload: 0 added, 0 removed, 0 changed, 1 unchanged" in \
            d.text()


@timeout(60)
def test_slow_password_command_blocks_no_one(env):
    """password_command runs beside the loop: an account whose helper
    takes 2 s does not hold up another account (whose session ends long
    before), and its own mail still arrives."""
    users = {"fast": "pf", "slow": "ps"}
    with FakePOP3(sample_messages(2), users=users, tls="implicit",
                  certfile=env.pki.cert, keyfile=env.pki.key) as srv, \
            SmtpSink(os.path.join(env.tmpdir, "sink")) as sink:
        h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "h"))
        h.smtp(sink.port)
        common = dict(host="localhost", port=srv.port, tls="implicit",
                      ca_file=env.pki.ca_cert, keep=True,
                      deliver_to=["alice@local.test"])
        script = os.path.join(h.dir, "slow-secret.sh")
        with open(script, "w") as f:
            f.write("#!/bin/sh\nsleep 2\necho ps\n")
        os.chmod(script, 0o700)
        h.account("slow", user="slow", password_command=[script], **common)
        h.account("fast", password="pf", user="fast", **common)
        h.secrets.add("ps")
        t0 = time.monotonic()
        r = h.run()
        r.check(h)
        assert r.rc == 0, r.tail()
        ended = [ln for ln in r.log.splitlines() if "session ended" in ln]
        assert len(ended) == 2, r.tail()
        assert "account=fast" in ended[0], "fast waited for slow:\n" + \
            "\n".join(ended)
        assert time.monotonic() - t0 >= 2
        assert len(r.delivered_uids("slow")) == 2
        assert len(r.delivered_uids("fast")) == 2
