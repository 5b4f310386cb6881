# ISC License; see LICENSE.
"""Configuration reload (SIGHUP and `haulctl reload`).

- Small: the fake POP3 server and smtp-sink.  An account is added, one
  removed, one changed and one left alone; the unchanged one keeps its
  counters and schedule, the changed one runs with its new settings, the
  removed one is gone from `haulctl status --json`.  A broken file leaves
  the daemon on the old configuration, with every error as FILE:LINE in
  the log and in haulctl's answer (exit 1).  The same through SIGHUP.
- An account removed in the middle of a session (keep = no) stops the
  way SIGTERM stops it: nothing lost, nothing deleted unless accepted.
- At scale: 200 accounts against the private Dovecot (POP3, IMAP polled,
  IMAP IDLE) delivering into smtp-sink.  A reload adds 50, removes 50,
  changes 10: every unchanged IDLE account keeps its Dovecot session
  (same login, never disconnected) and still gets pushed mail; mail
  appended before and after the reload arrives exactly once.
"""

import os
import re
import signal
import time

import fakepki
import haulfix
from fakepop3 import FakePOP3, sample_messages
from haulfix import Dovecot, make_message, timeout
from hauldrun import Hauld, SmtpSink
from imaprun import Daemon

NMSG = 5


def setup_module(env):
    env.pki = fakepki.make_pki(os.path.join(env.tmpdir, "pki"))


def _reload(dm):
    return dm.ctl("reload")


def _summary(text):
    """The counts of every 'reload: N added, ...' line of the log."""
    return [tuple(int(x) for x in m) for m in re.findall(
        r"reload: (\d+) added, (\d+) removed, (\d+) changed, (\d+) "
        r"unchanged", text)]


@timeout(30)
def test_reload_add_remove_change_and_broken(env):
    with FakePOP3(sample_messages(NMSG), users={"u": "p"}, tls="implicit",
                  certfile=env.pki.cert, keyfile=env.pki.key) as srv, \
            SmtpSink(os.path.join(env.tmpdir, "sink-a")) as sink:
        h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "a"))
        h.global_opts["control_socket"] = os.path.join(h.dir, "ctl.sock")
        h.smtp(sink.port)
        base = dict(host="localhost", port=srv.port, tls="implicit",
                    ca_file=env.pki.ca_cert, user="u", keep=True,
                    poll_interval=3600)
        for name in ("stay", "gone", "chg"):
            h.account(name, password="p", deliver_to=["%s@x.test" % name],
                      **base)
        dm = Daemon(h, debug=False)
        try:
            for name in ("stay", "gone", "chg"):
                assert dm.ctl("fetch", name).returncode == 0
            st = dm.wait(lambda s: all(s[n]["delivered"] == NMSG and
                                       s[n]["state"] == "idle"
                                       for n in ("stay", "gone", "chg")),
                         "first fetch")
            stay_before = st["stay"]
            assert stay_before["sessions"] == 1

            # -- haulctl reload: +new, -gone, chg gets a new interval
            del h.accounts["gone"]
            h.update("chg", poll_interval=20)
            h.account("new", password="p", deliver_to=["new@x.test"],
                      **base)
            h.write()
            r = _reload(dm)
            assert r.returncode == 0, r.stderr
            assert r.stdout.splitlines()[0] == \
                "reload: 1 added, 1 removed, 1 changed, 1 unchanged", \
                r.stdout
            st = dm.status()
            assert set(st) == {"stay", "chg", "new"}, st
            # unchanged: the same account object, counters and schedule
            assert st["stay"]["sessions"] == 1
            assert st["stay"]["delivered"] == NMSG
            assert st["stay"]["last_success"] == stay_before["last_success"]
            assert st["stay"]["next_poll_in"] > 3000, st["stay"]
            # changed: restarted with the new interval (first poll spread
            # over it), counters carried over
            # (-1: that first poll is running; after it: 20 s +- 10 %)
            assert -1 <= st["chg"]["next_poll_in"] <= 22, st["chg"]
            assert st["chg"]["delivered"] == NMSG
            # added: runs (and, as a new account, fetches everything)
            assert dm.ctl("fetch", "new").returncode == 0
            dm.wait(lambda s: s["new"]["delivered"] == NMSG, "new fetches")
            assert dm.ctl("fetch", "gone").returncode == 1
            assert _summary(dm.text()) == [(1, 1, 1, 1)]

            # -- a broken file: nothing changes, errors with FILE:LINE
            good = h.render()
            lines = good.splitlines()
            lines.insert(0, "bogus_top_level = 1")
            # a bad value right after the opening line of account "new"
            k = lines.index('account "new" {') + 1
            lines.insert(k, "\tpoll_interval = soon")
            bad_line = k + 1          # 1-based
            with open(h.conf, "w") as f:
                f.write("\n".join(lines) + "\n")
            r = _reload(dm)
            assert r.returncode == 1, (r.stdout, r.stderr)
            assert "configuration not reloaded: 2 errors" in r.stderr, \
                r.stderr
            assert "still running the previous one" in r.stderr
            errs = r.stdout.splitlines()
            assert any(e.startswith("%s:1: " % h.conf) for e in errs), errs
            assert any(e.startswith("%s:%d: " % (h.conf, bad_line)) and
                       "poll_interval" in e for e in errs), (bad_line, errs)
            text = dm.text()
            assert re.search(r"reload: %s:1: " % re.escape(h.conf), text)
            assert re.search(r"reload: %s:%d: .*poll_interval" % (
                re.escape(h.conf), bad_line), text), text[-2000:]
            assert "reload failed: 2 errors" in text
            assert set(dm.status()) == {"stay", "chg", "new"}
            assert dm.proc.poll() is None

            # -- SIGHUP: the good file again minus "new"
            del h.accounts["new"]
            h.write()
            os.kill(dm.proc.pid, signal.SIGHUP)
            dm.wait_log(r"reload: 0 added, 1 removed, 0 changed, "
                        r"2 unchanged")
            assert set(dm.status()) == {"stay", "chg"}
            # SIGHUP with a broken file: still running, errors logged
            with open(h.conf, "a") as f:
                f.write("account \"x\" {\n\tprotocol = smoke\n}\n")
            nlines = len(h.render().splitlines())
            os.kill(dm.proc.pid, signal.SIGHUP)
            dm.wait_log(r"reload failed: \d+ errors?", n=2)
            assert re.search(r"reload: %s:%d: " % (re.escape(h.conf),
                                                    nlines + 2), dm.text())
            assert set(dm.status()) == {"stay", "chg"}
            # the survivors still work after three reloads
            srv.add_message(sample_messages(NMSG + 1)[NMSG])
            assert dm.ctl("fetch", "stay").returncode == 0
            dm.wait(lambda s: s["stay"]["delivered"] == NMSG + 1,
                    "stay fetches after reloads")
            assert dm.stop() == 0, dm.tail()
            for mark in ("Sanitizer", "runtime error:"):
                assert mark not in dm.text(), dm.text()[-3000:]
        finally:
            dm.close()


@timeout(40)
def test_reload_removes_account_mid_session_safely(env):
    """An account removed while its session fetches (keep = no, a slow
    server): the session is stopped the way SIGTERM stops it.  Every message
    is either still on the server or was accepted by the MTA, and only
    accepted ones were deleted; the account is gone at once."""
    n = 12
    # RETR answers trickle (~0.3 s a message): the reload lands mid-fetch
    with FakePOP3(sample_messages(n), users={"u": "p"}, tls="implicit",
                  certfile=env.pki.cert, keyfile=env.pki.key,
                  slow={"RETR": 0.0005}) as srv, \
            SmtpSink(os.path.join(env.tmpdir, "sink-c")) as sink:
        h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "c"))
        h.global_opts["control_socket"] = os.path.join(h.dir, "ctl.sock")
        h.smtp(sink.port, max_connections=1)
        for name in ("drain", "other"):
            h.account(name, password="p", host="localhost", port=srv.port,
                      tls="implicit", ca_file=env.pki.ca_cert, user="u",
                      keep=name == "other", poll_interval=3600,
                      deliver_to=["%s@x.test" % name])
        dm = Daemon(h, debug=False)
        try:
            assert dm.ctl("fetch", "drain").returncode == 0
            dm.wait(lambda s: 1 <= s["drain"]["delivered"] < n and
                    s["drain"]["state"] == "fetching", "mid-session")
            del h.accounts["drain"]
            h.write()
            r = dm.ctl("reload")
            assert r.returncode == 0, r.stderr
            assert r.stdout.startswith(
                "reload: 0 added, 1 removed, 0 changed, 1 unchanged")
            assert set(dm.status()) == {"other"}
            ended = dm.wait_log(r"account=drain: session ended:")
            assert "error" not in ended[0], ended
            accepted = {re.search(rb"(?im)^Message-ID:\s*(\S+)", m)
                        .group(1) for m in sink.dumps()}
            left = {re.search(rb"(?im)^Message-ID:\s*(\S+)", m).group(1)
                    for m in srv.remaining()}
            everything = {b"<fake%d@example.test>" % i
                          for i in range(1, n + 1)}
            assert accepted | left == everything, "lost: %s" % (
                everything - accepted - left)
            # deleted = no longer on the server: all of them accepted
            assert everything - left <= accepted
            env.log("removed mid-session: %d accepted, %d left, %d "
                    "expunged" % (len(accepted), len(left),
                                  len(srv.expunged_uids())))
            assert len(accepted) < n, "the removal came too late to test"
            assert len(srv.expunged_uids()) == n - len(left)
            assert dm.stop() == 0, dm.tail()
            for mark in ("Sanitizer", "runtime error:"):
                assert mark not in dm.text(), dm.text()[-3000:]
        finally:
            dm.close()


# --------------------------------------------------------------------------
# 200 accounts against the private Dovecot

N0 = 200            # accounts at start: a000..a199
REMOVED = range(0, 50)
CHANGED = range(50, 60)
ADDED = range(200, 250)
KIND = ("pop3", "imap-poll", "imap-idle")


def _kind(i):
    return KIND[i % 3]


def _user(i):
    return "u%03d" % i


def _scale_account(h, d, i, **extra):
    kind = _kind(i)
    opts = dict(host=d.host, tls="none", allow_plaintext=True,
                user=_user(i), keep=True, poll_interval=10, timeout=10,
                deliver_to=["%s@x.test" % _user(i)])
    if kind == "pop3":
        opts.update(protocol="pop3", port=d.pop3_port)
    else:
        opts.update(protocol="imap", port=d.imap_port, folders=["INBOX"],
                    idle=kind == "imap-idle")
    opts.update(extra)
    h.account("a%03d" % i, password=d.password(_user(i)), **opts)


def _seed(d, i, seq, tag):
    """One message for account i; returns its Message-ID."""
    msg = make_message(seq, size=600, to="%s@remote.test" % _user(i),
                       msgid="<reload.%s.%d.%d@remote.test>" % (tag, i, seq))
    d.seed(_user(i), [msg])
    return "<reload.%s.%d.%d@remote.test>" % (tag, i, seq)


def _sink_ids(sink):
    out = {}
    for data in sink.dumps():
        m = re.search(rb"(?im)^Message-ID:\s*(\S+)", data)
        if m:
            k = m.group(1).decode()
            out[k] = out.get(k, 0) + 1
    return out


def _logins(d):
    """{user: number of IMAP logins} from Dovecot's log."""
    out = {}
    with open(d.log_file, encoding="utf-8", errors="replace") as f:
        for ln in f:
            m = re.search(r"imap-login: (?:Info: )?Login: user=<(u\d+)>", ln)
            if m:
                out[m.group(1)] = out.get(m.group(1), 0) + 1
    return out


def _imap_ended(d):
    """Users whose IMAP session Dovecot saw end."""
    out = set()
    with open(d.log_file, encoding="utf-8", errors="replace") as f:
        for ln in f:
            m = re.search(r"imap\((u\d+)\).*Disconnected", ln)
            if m:
                out.add(m.group(1))
    return out


@timeout(150)
def test_reload_200_accounts_idle_sessions_survive(env):
    haulfix.need_root()
    haulfix.need_binaries("dovecot", "smtp-sink")
    hauld = env.need("hauld")
    env.need("haulctl")
    users = {_user(i): "pw-%03d-Rl9" % i for i in range(250)}
    d = Dovecot(users=users, extra_conf=(
        "default_process_limit = 1000\n"
        "default_client_limit = 4000\n"))
    expect = {}          # message id -> account index
    seq = 900000
    try:
        d.start()
        t0 = time.monotonic()
        for i in range(250):
            for _ in range(2):
                seq += 1
                expect[_seed(d, i, seq, "start")] = i
        with SmtpSink(os.path.join(env.tmpdir, "sink-b")) as sink:
            h = Hauld(hauld, os.path.join(env.tmpdir, "b"))
            h.global_opts["control_socket"] = os.path.join(h.dir, "ctl.sock")
            h.global_opts["max_connections_per_host"] = 64
            h.smtp(sink.port, max_connections=8)
            for i in range(N0):
                _scale_account(h, d, i)
            dm = Daemon(h, debug=False)
            try:
                idle0 = ["a%03d" % i for i in range(N0)
                         if _kind(i) == "imap-idle"]
                st = dm.wait(lambda s: all(s[a]["state"] == "idling"
                                           for a in idle0) and
                             all(s["a%03d" % i]["delivered"] >= 2
                                 for i in range(N0)),
                             "every account fetched, IDLE ones idling",
                             t=60)
                env.log("200 accounts up and idling: %.1fs" %
                        (time.monotonic() - t0))
                logins0 = _logins(d)
                # mail arriving around the reload: some of it in flight
                for i in range(250):
                    seq += 1
                    expect[_seed(d, i, seq, "before")] = i
                for i in REMOVED:
                    del h.accounts["a%03d" % i]
                for i in CHANGED:
                    h.update("a%03d" % i, timeout=11)
                for i in ADDED:
                    _scale_account(h, d, i)
                h.write()
                r = dm.ctl("reload")
                assert r.returncode == 0, (r.stdout, r.stderr)
                assert r.stdout.splitlines()[0] == (
                    "reload: 50 added, 50 removed, 10 changed, 140 "
                    "unchanged"), r.stdout
                for i in list(CHANGED) + list(range(60, 250)):
                    seq += 1
                    expect[_seed(d, i, seq, "after")] = i
                live = list(CHANGED) + list(range(60, 250))
                st = dm.status()
                assert set(st) == {"a%03d" % i for i in live}, \
                    sorted(set(st) ^ {"a%03d" % i for i in live})[:10]

                # everything for a live account arrives exactly once
                want = {m for m, i in expect.items() if i in live}
                deadline = time.monotonic() + 60
                while True:
                    got = _sink_ids(sink)
                    missing = want - set(got)
                    if not missing:
                        break
                    assert time.monotonic() < deadline, \
                        "%d messages missing, e.g. %s\n%s" % (
                            len(missing), sorted(missing)[:5], dm.tail())
                    assert dm.proc.poll() is None, dm.tail()
                    time.sleep(0.2)
                dup = {m: n for m, n in got.items() if n > 1}
                assert not dup, "delivered twice: %s" % list(dup)[:5]
                env.log("reload + delivery of %d messages: %.1fs" % (
                    len(want), time.monotonic() - t0))

                kept_idle = [i for i in range(60, N0)
                             if _kind(i) == "imap-idle"]
                assert kept_idle
                # pushed mail delivered: back in IDLE (not a flake source)
                idlers = ["a%03d" % i for i in kept_idle + [
                    j for j in CHANGED if _kind(j) == "imap-idle"]]
                st = dm.wait(lambda s: all(
                    s[a]["state"] == "idling" and s[a]["delivered"] == 4
                    for a in idlers) and all(
                    s["a%03d" % i]["delivered"] == 4 for i in ADDED),
                    "IDLE accounts idling again", t=20)
                logins1 = _logins(d)
                ended = _imap_ended(d)
                for i in kept_idle:
                    a, u = "a%03d" % i, _user(i)
                    # hauld's side: the same session, still idling
                    assert st[a]["state"] == "idling", st[a]
                    assert st[a]["sessions"] == 1, st[a]
                    assert st[a]["delivered"] == 4, st[a]
                    # Dovecot's side: one login ever, never disconnected
                    assert logins1.get(u) == 1 == logins0.get(u), \
                        (u, logins0.get(u), logins1.get(u))
                    assert u not in ended, u
                # the check can fail: changed and removed IDLE accounts
                # did log out (and the changed ones in again)
                for i in CHANGED:
                    if _kind(i) == "imap-idle":
                        assert _user(i) in ended
                        assert logins1[_user(i)] >= 2
                        assert st["a%03d" % i]["state"] == "idling"
                for i in REMOVED:
                    if _kind(i) == "imap-idle":
                        assert _user(i) in ended, _user(i)
                for i in ADDED:
                    assert st["a%03d" % i]["delivered"] == 4, \
                        st["a%03d" % i]
                assert dm.stop() == 0, dm.tail()
                text = dm.text()
                for mark in ("Sanitizer", "runtime error:"):
                    assert mark not in text, text[-3000:]
                assert _summary(text) == [(50, 50, 10, 140)]
            finally:
                dm.close()
    finally:
        d.close()


@timeout(30)
def test_changed_account_keeps_its_auth_backoff(env):
    """A changed setting restarts the account but not its backoff: an
    account whose login failed is not re-polled early (provider lockout),
    and its failure count and alert stay."""
    with FakePOP3(sample_messages(1), users={"u": "p"}, tls="implicit",
                  certfile=env.pki.cert, keyfile=env.pki.key) as srv, \
            SmtpSink(os.path.join(env.tmpdir, "sink-bo")) as sink:
        h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "bo"))
        h.global_opts["control_socket"] = os.path.join(h.dir, "ctl.sock")
        h.smtp(sink.port)
        h.account("bad", host="localhost", port=srv.port, tls="implicit",
                  ca_file=env.pki.ca_cert, user="u", keep=True,
                  poll_interval=3600, password="wrong",
                  deliver_to=["bad@x.test"])
        dm = Daemon(h, debug=False)
        try:
            assert dm.ctl("fetch", "bad").returncode == 0
            st = dm.wait(lambda s: s["bad"]["failures"] >= 1 and
                         s["bad"]["state"] != "fetching", "auth failure")
            before = st["bad"]
            assert before["last_error_class"] == "auth", before
            backoff = before["next_poll_in"]
            assert backoff > 30, before
            passes = srv.commands().count("PASS")

            h.update("bad", poll_interval=10)   # would poll within 11 s
            h.write()
            r = _reload(dm)
            assert r.returncode == 0, r.stderr
            assert "1 changed" in r.stdout, r.stdout
            st = dm.status()["bad"]
            assert st["failures"] == before["failures"], st
            assert st["last_error_class"] == "auth", st
            assert st["next_poll_in"] >= backoff - 5, (st, backoff)
            time.sleep(1.5)
            assert srv.commands().count("PASS") == passes
        finally:
            dm.close()
