# ISC License; see LICENSE.
"""hauld under faults, end to end (reliability.md 4.4 D1/D2/D5/D11 and the
POP3 cases of 4.2): a failing MTA (Postfix's smtp-sink with -r/-f/-q), a
failing LDA (small shell scripts), and a misbehaving POP3 server
(tests/fixtures/fakepop3.py) with malformed or unfriendly replies.

The invariants checked after every run: hauld exited by itself with 0 or 1
(never a signal, never the timeout), no test password in its debug log,
nothing deleted on the server that the MTA did not accept, every message
still on the server unless accepted, and a later run against a working
sink delivers each tempfailed message exactly once while refused ones stay
refused (on the server, not delivered again).
"""

import os
import re
import time

import haulfix
from haulfix import Dovecot, Postfix, make_message, timeout
from hauldrun import Hauld, SmtpSink, free_port, header, lda_script, \
    message_ids
from fakepop3 import FakePOP3, sample_messages, uid_for

TIMEOUT = 60
SETUP_TIMEOUT = 60

FAKE_USER = "fetcher"
FAKE_PW = "Fk-pw-5tq8Lr3xNv"
DOVE_USERS = {"dtemp": "Dv-pw-temp-Kk38aQ", "drefuse": "Dv-pw-ref-Pq29bZ"}


def setup_module(env):
    haulfix.need_root()
    haulfix.need_binaries("dovecot", "postfix", "postconf", "openssl",
                          "smtp-sink")
    env.need("hauld")
    env.dovecot = Dovecot(users=DOVE_USERS)
    env.postfix = Postfix(users=tuple(DOVE_USERS), catch_all=False)
    env.pki = env.dovecot.pki
    env.dovecot.start()
    env.postfix.start()


def teardown_module(env):
    for name in ("dovecot", "postfix"):
        f = getattr(env, name, None)
        if f is not None:
            f.close()


# --------------------------------------------------------------------------
# helpers


class Case:
    """One test's fake POP3 server, sinks and hauld config; cleaned up by
    close() (use as a context manager)."""

    def __init__(self, env, messages=None, n=3, tls="implicit", keep=False,
                 account=None, **faults):
        self.env = env
        self.msgs = list(messages if messages is not None
                         else sample_messages(n, 700))
        self.sinks = []
        kw = {}
        if tls:
            kw = {"tls": tls, "certfile": env.pki.server_cert,
                  "keyfile": env.pki.server_key}
        self.srv = FakePOP3(self.msgs, users={FAKE_USER: FAKE_PW}, **kw,
                            **faults)
        self.h = Hauld(env.hauld, os.path.join(env.tmpdir, "hauld"))
        opts = {"host": "localhost", "port": self.srv.port, "user": FAKE_USER,
                "keep": keep, "deliver_to": ["rcpt@local.test"],
                "timeout": 10}
        if tls:
            opts.update(tls=tls, ca_file=env.pki.ca_file)
        else:
            opts.update(tls="none", allow_plaintext=True)
        opts.update(account or {})
        self.h.account("fake", password=FAKE_PW, **opts)

    def sink(self, *options, name=None, mode="smtp"):
        if mode == "lmtp":
            options = ("-L",) + options
        s = SmtpSink(os.path.join(self.env.tmpdir, name or "sink%d" % len(
            self.sinks)), options).start()
        self.sinks.append(s)
        self.h.smtp(s.port, mode=mode)
        return s

    def run(self, rcs=(0, 1), timeout=15):
        r = self.h.run(timeout=timeout)
        r.check(self.h, rcs=rcs)
        assert not self.srv.saw_credentials_before_tls() or \
            self.srv.tls_mode is None, "credentials sent before TLS:\n" + \
            self.srv.dump()
        assert not self.srv.errors, self.srv.errors
        return r

    def ids(self, idx=None):
        """Message-IDs of the messages (1-based numbers idx)."""
        all_ = message_ids(self.msgs)
        return all_ if idx is None else [all_[i - 1] for i in idx]

    def close(self):
        for s in self.sinks:
            s.stop()
        self.srv.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def delivered_ids(sink):
    return message_ids(sink.dumps())


def assert_each_once(got, want, what="the sink"):
    dup = sorted({m for m in got if got.count(m) > 1})
    assert not dup, "delivered more than once to %s: %s" % (what, dup)
    assert sorted(got) == sorted(want), \
        "%s got %s, expected exactly %s" % (what, sorted(got), sorted(want))


def assert_all_on_server(c, what=""):
    rem = c.srv.remaining()
    assert len(rem) == len(c.msgs), \
        "%s: %d of %d messages left on the server (expunged %s)\n%s" % (
            what, len(rem), len(c.msgs), c.srv.expunged_uids(), c.srv.dump())


# --------------------------------------------------------------------------
# D1/D2/D5: the MTA fails (smtp-sink), fake POP3 server with keep=no


def _smtp_fault(env, options, kind, mode="smtp"):
    with Case(env, n=3) as c:
        c.sink(*options, name="faulty", mode=mode)
        r1 = c.run(rcs=(1,) if kind == "tempfail" else (0, 1))
        assert c.srv.dele_count() == 0, \
            "DELE sent although the MTA accepted nothing:\n" + c.srv.dump()
        assert_all_on_server(c, "after the failing run")
        assert not r1.delivered_uids(), r1.delivered_uids()
        s = r1.session()
        assert s["delivered"] == 0 and s["deleted"] == 0, s
        if kind == "refused":
            assert s["refused"] == 3, s
            assert r1.grep(r"refused uid"), r1.tail()
        else:
            assert s["refused"] == 0, s
            assert r1.grep(r"failed temporarily"), r1.tail()
            assert s["error"], s

        good = c.sink(name="working", mode=mode)
        r2 = c.run(rcs=(0,))
        if kind == "tempfail":
            assert_each_once(delivered_ids(good), c.ids(), "the working sink")
            assert c.srv.remaining() == [], "accepted mail not deleted"
            assert_deleted_only_delivered(c, [r1, r2])
            assert_no_loss(c, good)
        else:
            assert delivered_ids(good) == [], \
                "refused messages were delivered again"
            assert c.srv.dele_count() == 0, c.srv.dump()
            assert_all_on_server(c, "refused")
            # and a third run still leaves them alone (no retry loop)
            r3 = c.run(rcs=(0,))
            assert delivered_ids(good) == [] and c.srv.dele_count() == 0
            assert r3.session()["delivered"] == 0
        return r1, r2


def test_smtp_4xx_at_mail(env):
    _smtp_fault(env, ["-r", "MAIL"], "tempfail")


def test_smtp_4xx_at_rcpt(env):
    _smtp_fault(env, ["-r", "RCPT"], "tempfail")


def test_smtp_4xx_at_data(env):
    _smtp_fault(env, ["-r", "DATA"], "tempfail")


def test_smtp_4xx_at_end_of_data(env):
    _smtp_fault(env, ["-r", "."], "tempfail")


def test_smtp_421_at_greeting(env):
    """D1: the MTA greets with 421 and closes: a temporary failure of the
    delivery, not a reason to reconnect forever."""
    _smtp_fault(env, ["-Q", "CONNECT"], "tempfail")


def test_smtp_4xx_at_ehlo(env):
    """D1: EHLO answered 4xx."""
    _smtp_fault(env, ["-r", "EHLO"], "tempfail")


def test_smtp_5xx_at_rcpt(env):
    _smtp_fault(env, ["-f", "RCPT"], "refused")


def test_smtp_5xx_at_end_of_data(env):
    _smtp_fault(env, ["-f", "."], "refused")


def test_smtp_disconnect_after_data_command(env):
    _smtp_fault(env, ["-q", "DATA"], "tempfail")


def test_smtp_disconnect_after_final_dot(env):
    """D5: the reply to the final dot never comes: outcome unknown, so the
    message stays and is retried (the sink never said 250)."""
    r1, _ = _smtp_fault(env, ["-q", "."], "tempfail")
    assert r1.grep(r"outcome unknown"), r1.tail()


def test_smtp_end_of_data_reply_never_comes(env):
    """D4: the MTA holds the reply to the final dot (smtp-sink -W .:60)
    past final_timeout (2 s): outcome unknown, keep and retry."""
    with Case(env, n=2) as c:
        c.sink("-W", ".:60", name="slow")
        c.h.delivery_opts.update(final_timeout=2, command_timeout=5)
        r1 = c.run(rcs=(1,), timeout=25)
        assert r1.elapsed < 15, "took %.1fs" % r1.elapsed
        assert c.srv.dele_count() == 0, c.srv.dump()
        assert_all_on_server(c)
        assert not r1.delivered_uids()
        good = c.sink(name="working")
        c.run(rcs=(0,))
        assert_each_once(delivered_ids(good), c.ids(), "the working sink")
        assert c.srv.remaining() == []


def test_smtp_mta_not_listening(env):
    """Connection refused by the MTA: tempfail, nothing deleted; a later
    run with the MTA up delivers each exactly once."""
    with Case(env, n=3) as c:
        c.h.smtp(free_port())
        r1 = c.run(rcs=(1,))
        assert c.srv.dele_count() == 0 and not r1.delivered_uids()
        assert_all_on_server(c)
        good = c.sink(name="working")
        c.run(rcs=(0,))
        assert_each_once(delivered_ids(good), c.ids(), "the working sink")
        assert c.srv.remaining() == []


def test_lmtp_4xx_at_end_of_data(env):
    """LMTP (smtp-sink -L): the per-recipient reply after the data is
    4xx."""
    _smtp_fault(env, ["-r", "."], "tempfail", mode="lmtp")


def test_lmtp_5xx_at_rcpt(env):
    _smtp_fault(env, ["-f", "RCPT"], "refused", mode="lmtp")


def test_lmtp_5xx_at_end_of_data(env):
    _smtp_fault(env, ["-f", "."], "refused", mode="lmtp")


# --------------------------------------------------------------------------
# Dovecot with keep=no and a failing MTA, then the real Postfix


def _dovecot_fault(env, user, options, kind):
    d, p = env.dovecot, env.postfix
    msgs = [make_message(500 + i, size=1200 + 300 * i,
                         to="%s@remote.test" % user, tricky=True)
            for i in range(5)]
    d.seed(user, msgs)
    h = Hauld(env.hauld, env.tmpdir)
    h.account("dove", password=DOVE_USERS[user], host="localhost",
              port=d.pop3s_port, tls="implicit", ca_file=d.ca_file,
              user=user, keep=False, deliver_to=["%s@local.test" % user])
    bad = SmtpSink(os.path.join(env.tmpdir, "faulty"), options).start()
    try:
        h.smtp(bad.port)
        r1 = h.run()
        r1.check(h, rcs=(1,) if kind == "tempfail" else (0, 1))
    finally:
        bad.stop()
    assert d.count(user) == 5, "keep=no lost messages the MTA refused"
    assert not r1.grep(r"pop3: C: DELE"), r1.grep(r"pop3: C: DELE")
    h.smtp(p.plain_port)
    r2 = h.run()
    r2.check(h, rcs=(0,))
    s = r2.session()
    if kind == "tempfail":
        assert (s["delivered"], s["deleted"]) == (5, 5), s
        p.wait_maildir(user, 5)
        assert d.count(user) == 0
    else:
        assert (s["fetched"], s["delivered"], s["deleted"]) == (0, 0, 0), s
        assert d.count(user) == 5
    end = time.monotonic() + 10
    while any(p.queue()[q] for q in ("incoming", "active", "maildrop")) \
            and time.monotonic() < end:
        time.sleep(0.05)
    got = message_ids(p.maildir_messages(user))
    assert_each_once(got, message_ids(msgs) if kind == "tempfail" else [],
                     "Postfix")


def test_dovecot_keep_no_4xx_rcpt_then_postfix(env):
    _dovecot_fault(env, "dtemp", ["-r", "RCPT"], "tempfail")


def test_dovecot_keep_no_5xx_end_of_data_then_postfix(env):
    _dovecot_fault(env, "drefuse", ["-f", "."], "refused")


# --------------------------------------------------------------------------
# D11: a failing LDA (mode = lda), fake POP3 server with keep=no


def _good_lda(env):
    out = os.path.join(env.tmpdir, "lda-out")
    os.makedirs(out, exist_ok=True)
    prog = lda_script(os.path.join(env.tmpdir, "good-lda"),
                      'f=$(mktemp "%s/m.XXXXXX") || exit 75\n'
                      'cat > "$f" || exit 75\n'
                      'echo "$1" > "$f.rcpt"\n'
                      'exit 0' % out)
    return prog, out


def _lda_outputs(out):
    res = []
    for n in sorted(os.listdir(out)):
        if n.endswith(".rcpt"):
            continue
        with open(os.path.join(out, n), "rb") as f:
            res.append(f.read())
    return res


def _lda_fault(env, body, kind):
    with Case(env, n=3) as c:
        bad = lda_script(os.path.join(env.tmpdir, "bad-lda"), body)
        c.h.lda([bad, "%u"])
        r1 = c.run(rcs=(1,) if kind == "tempfail" else (0, 1))
        assert c.srv.dele_count() == 0, c.srv.dump()
        assert_all_on_server(c, "after the failing LDA")
        s = r1.session()
        assert s["delivered"] == 0 and s["deleted"] == 0, s
        if kind == "refused":
            assert s["refused"] == 3, s

        prog, out = _good_lda(env)
        c.h.lda([prog, "%u"])
        r2 = c.run(rcs=(0,))
        got = _lda_outputs(out)
        if kind == "tempfail":
            assert_each_once(message_ids(got), c.ids(), "the LDA")
            assert c.srv.remaining() == [], "accepted mail not deleted"
            for n in os.listdir(out):
                if n.endswith(".rcpt"):
                    with open(os.path.join(out, n)) as f:
                        assert f.read().strip() == "rcpt@local.test"
            for g in got:   # CRLF or LF, but the message is whole
                assert g.rstrip().endswith(b"x" * 20) or b"body of" in g
        else:
            assert got == [], "refused messages delivered again"
            assert_all_on_server(c, "refused by the LDA")
            assert c.srv.dele_count() == 0
            r3 = c.run(rcs=(0,))
            assert _lda_outputs(out) == [] and c.srv.dele_count() == 0
            assert r3.session()["delivered"] == 0
        return r1, r2


def test_lda_exit_75_tempfail(env):
    r1, _ = _lda_fault(env, "exit 75", "tempfail")
    assert r1.grep(r"exited 75"), r1.tail()


def test_lda_exit_67_refused(env):
    r1, _ = _lda_fault(env, "cat >/dev/null\nexit 67", "refused")
    assert r1.grep(r"exited 67"), r1.tail()


def test_lda_killed_by_signal(env):
    r1, _ = _lda_fault(env, "kill -9 $$", "tempfail")
    assert r1.grep(r"signal 9"), r1.tail()


def _lda_mixed(env, code):
    """The LDA accepts messages 1 and 3 and fails message 2 (by its UID,
    %i) with exit code: only what it accepted may be DELEted; message 2
    stays on the server.  Then a working LDA: every message delivered
    exactly once over both runs (2 only if it was a tempfail)."""
    with Case(env, n=3) as c:
        prog, out = _good_lda(env)
        mixed = lda_script(os.path.join(env.tmpdir, "mixed-lda"),
                           'case "$2" in 000002-*) cat >/dev/null; '
                           'exit %d;; esac\nexec %s "$@"' % (code, prog))
        c.h.lda([mixed, "%u", "%i"])
        r1 = c.run(rcs=(1,) if code == 75 else (0, 1))
        accepted = set(r1.delivered_uids())
        deleted = set(c.srv.deleted_uids())
        assert deleted <= accepted, \
            "DELE for UIDs the LDA never accepted: %s" % (deleted - accepted)
        assert not [u for u in deleted if u.startswith("000002-")]
        assert c.msgs[1] in c.srv.remaining(), "message 2 left the server"
        got1 = message_ids(_lda_outputs(out))
        assert c.ids([2])[0] not in got1
        assert_each_once(got1, [m for m in got1])

        c.h.lda([prog, "%u"])
        r2 = c.run(rcs=(0,))
        got = message_ids(_lda_outputs(out))
        if code == 75:
            assert_each_once(got, c.ids(), "the LDA")
            assert c.srv.remaining() == []
        else:
            assert_each_once(got, c.ids([1, 3]), "the LDA")
            assert c.srv.remaining() == [c.msgs[1]]
            assert r2.session()["delivered"] == 0


def test_lda_mixed_accept_and_tempfail(env):
    _lda_mixed(env, 75)


def test_lda_mixed_accept_and_refuse(env):
    _lda_mixed(env, 67)


def test_lda_good_delivers_once_and_deletes(env):
    with Case(env, n=4) as c:
        prog, out = _good_lda(env)
        c.h.lda([prog, "%u"])
        r = c.run(rcs=(0,))
        assert_each_once(message_ids(_lda_outputs(out)), c.ids(), "the LDA")
        assert c.srv.remaining() == []
        assert r.session()["deleted"] == 4


# --------------------------------------------------------------------------
# Malformed and unfriendly POP3 servers (fakepop3)


def test_long_line_greeting(env):
    """M16: a 100 kB greeting line with no CRLF: the line cap aborts the
    session at once (not the idle timeout); nothing sent, nothing lost."""
    with Case(env, long_line=100000) as c:
        c.sink()
        r = c.run(rcs=(1,))
        assert r.elapsed < 8, "took %.1fs: line cap not enforced" % r.elapsed
        assert r.grep(r"longer than|too long"), r.tail()
        assert not c.srv.lines("PASS") and not c.srv.lines("USER")
        assert_all_on_server(c)


def test_long_line_uidl(env):
    """A 70 kB UIDL reply line: abort, nothing fetched or deleted."""
    with Case(env, long_line={"at": "UIDL", "size": 70000}) as c:
        sink = c.sink()
        r = c.run(rcs=(1,))
        assert r.elapsed < 8, "took %.1fs" % r.elapsed
        assert r.grep(r"longer than|too long"), r.tail()
        assert not c.srv.lines("RETR") and c.srv.dele_count() == 0
        assert delivered_ids(sink) == []
        assert_all_on_server(c)


def test_long_message_line_is_not_a_protocol_line(env):
    """A 900-octet line inside a message body (over the 512-octet status
    line cap, under SMTP's 998) is message data: delivered intact."""
    long_line = "L" * 900
    msgs = [make_message(900 + i, size=1500, crlf=True,
                         body="short\n%s\nend %d\n" % (long_line, i))
            for i in range(2)]
    with Case(env, messages=msgs) as c:
        sink = c.sink()
        c.run(rcs=(0,))
        got = sink.dumps()
        assert_each_once(message_ids(got), c.ids(), "the sink")
        for g in got:
            assert long_line.encode() in g.split(b"\n"), \
                "the long line was altered"


BAD_UIDL = {
    "space": ["1 uid-one", "2 has space", "3 uid-three"],
    "too_long": ["1 uid-one", "2 " + "x" * 71, "3 uid-three"],
    "control_char": ["1 uid-one", "2 ctl\x01char", "3 uid-three"],
    "msgno_zero": ["1 uid-one", "0 uid-zero", "3 uid-three"],
}


def _bad_uidl(env, name):
    """M29/M18: an illegal UIDL line.  Message 2 (the one without a legal
    UID) is never delivered nor deleted; nothing at all is deleted unless
    legally identified and accepted; no crash; the log names UIDL."""
    with Case(env, uidl_lines=BAD_UIDL[name]) as c:
        sink = c.sink()
        r = c.run()
        got = delivered_ids(sink)
        assert c.ids([2])[0] not in got, \
            "message 2 delivered under an illegal UID:\n" + r.tail()
        assert_each_once(got, [m for m in got])
        bad_uid = BAD_UIDL[name][1].split(" ", 1)[1]
        dele = [e for e in c.srv.uid_events("DELE") if e.msgno == 2]
        assert not dele, "message 2 (illegal UID) was deleted"
        assert c.srv.remaining()[1:2] == [c.msgs[1]] or \
            c.msgs[1] in c.srv.remaining(), "message 2 gone from the server"
        assert not r.delivered_uids() or bad_uid not in r.delivered_uids()
        assert r.grep(r"uidl|uid"), r.tail()
        if not got:
            assert_all_on_server(c)
        return r, c


def test_bad_uidl_space(env):
    _bad_uidl(env, "space")


def test_bad_uidl_too_long(env):
    _bad_uidl(env, "too_long")


def test_bad_uidl_control_char(env):
    _bad_uidl(env, "control_char")


def test_bad_uidl_msgno_zero(env):
    _bad_uidl(env, "msgno_zero")


def test_legal_odd_uids_round_trip(env):
    """M29: legal but awkward UIDs (path-like, printf-like, quotes, the
    70-octet maximum) are stored and recognised: keep=yes, the second run
    delivers nothing."""
    uids = ["../x", "a/b\\c%s%n", "'\";--", "~" + "Z" * 69]
    with Case(env, n=4, keep=True) as c:
        c.srv.stop()
        c.srv = FakePOP3(c.msgs, users={FAKE_USER: FAKE_PW}, uids=uids,
                         tls="implicit", certfile=env.pki.server_cert,
                         keyfile=env.pki.server_key)
        c.h.update("fake", port=c.srv.port)
        sink = c.sink()
        r1 = c.run(rcs=(0,))
        logged = [u.replace("\\\\", "\\") for u in r1.delivered_uids()]
        assert sorted(logged) == sorted(uids), logged  # log escapes "\\"
        assert_each_once(delivered_ids(sink), c.ids())
        r2 = c.run(rcs=(0,))
        assert r2.delivered_uids() == [] and not [
            ln for ln in c.srv.lines("RETR") if ln.conn > 1]
        assert_each_once(delivered_ids(sink), c.ids())
        assert c.srv.dele_count() == 0


def test_drop_after_dele_before_quit(env):
    """M33: the connection drops right after the first DELE reply (no
    QUIT): nothing committed, no re-delivery next run, which deletes."""
    with Case(env, n=3, close_after="DELE") as c:
        sink = c.sink()
        c.run()
        assert_each_once(delivered_ids(sink), c.ids())
        assert_all_on_server(c)
        c.srv.clear_faults()
        c.run(rcs=(0,))
        assert_each_once(delivered_ids(sink), c.ids())
        assert c.srv.remaining() == []
        assert not [ln for ln in c.srv.lines("RETR") if ln.conn > 1]


def test_duplicate_uids(env):
    """M26: two messages share a UID: neither fetched nor deleted (now or
    on a later run); the others are delivered and deleted."""
    with Case(env, n=4, uidl_lines=["1 dup-uid", "2 dup-uid", "3 uid-3",
                                    "4 uid-4"]) as c:
        sink = c.sink()
        r = c.run()
        retr = sorted(int(ln.raw.split()[1]) for ln in c.srv.lines("RETR"))
        assert retr == [3, 4], "RETRieved %s" % retr
        assert sorted(e.msgno for e in c.srv.uid_events("DELE")) == [3, 4]
        assert_each_once(delivered_ids(sink), c.ids([3, 4]))
        assert c.srv.remaining() == c.msgs[:2]
        assert r.grep(r"shares uid|share their uid"), r.tail()
        # the server now holds only the two twins
        c.srv.set_faults(uidl_lines=["1 dup-uid", "2 dup-uid"])
        c.run()
        retr = [ln for ln in c.srv.lines("RETR") if ln.conn > 1]
        assert not retr, "twins fetched on the second run"
        assert_each_once(delivered_ids(sink), c.ids([3, 4]))
        assert c.srv.remaining() == c.msgs[:2]


def test_quit_err_no_redelivery_then_delete(env):
    """M33: -ERR to QUIT (keep=no): the DELEs were not committed; the
    messages are delivered once, stay on the server, and the next run does
    not deliver them again (the store knows them) but deletes them."""
    with Case(env, n=3, quit_err=True) as c:
        sink = c.sink()
        c.run()
        assert_each_once(delivered_ids(sink), c.ids())
        assert_all_on_server(c, "-ERR to QUIT")
        c.srv.clear_faults()
        r2 = c.run(rcs=(0,))
        assert_each_once(delivered_ids(sink), c.ids())
        assert not [ln for ln in c.srv.lines("RETR") if ln.conn > 1], \
            "second run fetched again"
        assert c.srv.remaining() == [], "second run did not delete"
        assert r2.session()["delivered"] == 0


def test_drop_mid_retr(env):
    """The server drops the connection in the middle of RETR 2: the cut
    message is not delivered (no partial copy); the next run delivers it
    and the rest, each exactly once."""
    with Case(env, n=3, drop_mid_retr=2) as c:
        sink = c.sink()
        c.run(rcs=(1,))
        got = delivered_ids(sink)
        assert c.ids([2])[0] not in got, "the cut message was delivered"
        for d in sink.dumps():
            assert b"body of message 2" not in d, "partial copy delivered"
        assert_each_once(got, [m for m in c.ids([1]) if m in got])
        assert_all_on_server(c, "after the drop")
        c.srv.clear_faults()
        c.run(rcs=(0,))
        assert_each_once(delivered_ids(sink), c.ids())
        assert c.srv.remaining() == []


def test_drop_before_quit_reply(env):
    """M33: the connection drops after QUIT, before +OK (not committed):
    delivered once, still on the server; next run deletes without
    re-delivering."""
    with Case(env, n=3, drop_before_quit_reply=True) as c:
        sink = c.sink()
        c.run()
        assert_each_once(delivered_ids(sink), c.ids())
        assert_all_on_server(c)
        c.srv.clear_faults()
        c.run(rcs=(0,))
        assert_each_once(delivered_ids(sink), c.ids())
        assert c.srv.remaining() == []
        assert not [ln for ln in c.srv.lines("RETR") if ln.conn > 1]


def test_drop_before_quit_reply_committed(env):
    """The server commits the deletions and then drops without +OK: the
    next run finds an empty maildrop and delivers nothing again."""
    with Case(env, n=3, drop_before_quit_reply="commit") as c:
        sink = c.sink()
        c.run()
        assert c.srv.remaining() == []
        c.srv.clear_faults()
        r2 = c.run(rcs=(0,))
        assert_each_once(delivered_ids(sink), c.ids())
        assert r2.session()["delivered"] == 0


def test_auth_failure_is_credential_class(env):
    """[AUTH]: exit 1, the log raises the credential alert; no mail."""
    with Case(env, auth_fail_code="[AUTH]") as c:
        sink = c.sink()
        r = c.run(rcs=(1,))
        assert r.grep(r"refused the credentials"), r.tail()
        assert not r.grep(r"temporary error"), r.tail()
        assert delivered_ids(sink) == [] and not c.srv.lines("RETR")


def test_in_use_is_temporary_not_credential(env):
    """[IN-USE]: exit 1, a temporary failure (no credential alert)."""
    with Case(env, auth_fail_code="[IN-USE]") as c:
        sink = c.sink()
        r = c.run(rcs=(1,))
        assert r.grep(r"temporary error"), r.tail()
        assert r.grep(r"IN-USE"), r.tail()
        assert not r.grep(r"refused the credentials"), r.tail()
        assert delivered_ids(sink) == [] and not c.srv.lines("RETR")


def test_no_uidl_with_keep_refused(env):
    """M28: UIDL unsupported and keep=yes: refused with a clear error,
    nothing fetched or delivered."""
    with Case(env, keep=True, no_uidl=True) as c:
        sink = c.sink()
        r = c.run(rcs=(1,))
        assert r.grep(r"uidl"), r.tail()
        assert not c.srv.lines("RETR"), "fetched without UIDs"
        assert delivered_ids(sink) == []
        assert c.srv.dele_count() == 0
        assert_all_on_server(c)


def assert_deleted_only_delivered(c, runs):
    """I1/I4 as far as the transcript shows: every UID the server was
    told to DELE was reported delivered by hauld in some run."""
    delivered = set()
    for r in runs:
        delivered |= set(r.delivered_uids())
    bad = set(c.srv.deleted_uids()) - delivered
    assert not bad, "DELE for UIDs never delivered: %s" % sorted(bad)


def assert_no_loss(c, sink):
    """I1: every message that left the server was delivered intact (its
    Message-ID and its last body line are in one delivered copy)."""
    gone = [i for i, m in enumerate(c.msgs)
            if uid_for(i, m) in c.srv.expunged_uids()]
    dumps = sink.dumps()
    lost = []
    for i in gone:
        mid = header(c.msgs[i], "Message-ID")
        last = c.msgs[i].rstrip(b"\r\n").rsplit(b"\n", 1)[-1].rstrip(b"\r")
        copies = [d for d in dumps if header(d, "Message-ID") == mid]
        if not copies:
            lost.append("message %d (%s) was deleted from the server but "
                        "never delivered" % (i + 1, mid))
        elif not any(last in d for d in copies):
            lost.append("message %d (%s) was deleted but only a truncated "
                        "copy was delivered" % (i + 1, mid))
    assert not lost, "\n".join(lost)


def test_retr_err_one_message(env):
    """RETR 2 answered -ERR: 1 and 3 delivered and deleted, 2 stays; the
    next run delivers 2 exactly once."""
    with Case(env, n=3, retr_err=2) as c:
        sink = c.sink()
        r1 = c.run()
        assert_each_once(delivered_ids(sink), c.ids([1, 3]))
        assert c.srv.remaining() == [c.msgs[1]]
        c.srv.clear_faults()
        r2 = c.run(rcs=(0,))
        assert_each_once(delivered_ids(sink), c.ids())
        assert c.srv.remaining() == []
        assert_deleted_only_delivered(c, [r1, r2])


def test_too_big_left_on_server(env):
    """M13: max_message_size = 2K: the 6 kB message is skipped with a
    log line, never delivered, never deleted, now or on the next run; the
    others are delivered and deleted."""
    msgs = [make_message(70 + i, size=s, crlf=True)
            for i, s in enumerate((700, 6000, 700))]
    with Case(env, messages=msgs, account={"max_message_size": "2K"}) as c:
        sink = c.sink()
        r1 = c.run()
        assert r1.grep(r"max_message_size"), r1.tail()
        assert_each_once(delivered_ids(sink), c.ids([1, 3]))
        assert c.srv.remaining() == [msgs[1]]
        r2 = c.run()
        assert_each_once(delivered_ids(sink), c.ids([1, 3]))
        assert c.srv.remaining() == [msgs[1]], "the big message was deleted"
        assert not [ln for ln in c.srv.lines("RETR") if ln.conn > 1 and
                    ln.raw.split()[1] == b"1"]
        assert_deleted_only_delivered(c, [r1, r2])


def test_bare_lf_dot_is_not_end_of_data(env):
    """M15 (SMTP smuggling class): a body with bare-LF "\n.\n" and a
    fake SMTP transaction after it.  hauld normalises to CRLF, so it must
    dot-stuff after normalising: the sink sees one message per original,
    with the text after the dot inside it, and no smuggled transaction."""
    smuggle = (b"before\n.\nMAIL FROM:<evil@smuggle.test>\nRCPT TO:"
               b"<victim@local.test>\nDATA\nSubject: SMUGGLED\n\nowned\n"
               b".\nx\n..\nafter the dot\r\n")
    msgs = [b"From: a@remote.test\r\nTo: b@local.test\r\nSubject: lf %d"
            b"\r\nMessage-ID: <lf%d@remote.test>\r\n\r\n" % (i, i) +
            smuggle for i in range(2)]
    msgs.append(b"From: a@remote.test\r\nSubject: cr\r\nMessage-ID: "
                b"<cr@remote.test>\r\n\r\nbefore\r.\rMAIL FROM:<evil2@"
                b"smuggle.test>\rend\r\n")
    with Case(env, messages=msgs) as c:
        sink = c.sink()
        r = c.run()
        dumps = sink.dumps()
        for d in dumps:
            assert b"evil@smuggle.test>\nX-Rcpt" not in d
            assert not re.search(rb"X-Mail-Args: <evil", d), \
                "a smuggled transaction reached the MTA:\n%r" % d[:400]
        ids = message_ids(dumps)
        assert_each_once(ids, [m for m in c.ids() if m in ids])
        assert set(c.ids()[:2]) <= set(ids), "the bare-LF messages were " \
            "not delivered"
        for d in dumps:
            if header(d, "Message-ID").startswith("<lf"):
                assert b"after the dot" in d and b"owned" in d, \
                    "message cut at the bare-LF dot:\n%r" % d
                # smtp-sink un-stuffs and writes LF: the dots must survive
                assert b"\nbefore\n.\nMAIL FROM:<evil@smuggle.test>\n" in d \
                    and b"\nowned\n.\nx\n..\nafter the dot\n" in d, \
                    "dot lines after a bare LF were altered " \
                    "(dot dropped):\n%r" % d[d.find(b"before"):]
        assert_deleted_only_delivered(c, [r])
        assert len(c.srv.remaining()) + len(ids) >= len(msgs)


def test_bare_lf_dot_crlf_does_not_end_the_message(env):
    """An attacker's message holds a bare LF followed by ".\r\n" and a
    fake RETR reply.  RFC 1939's terminator is CRLF "." CRLF; after a bare
    LF it is message data (the server does not stuff it).  hauld must not
    end the message there: no truncated copy, no forged message delivered
    under another message's UID, and (over two runs, keep=no) no message
    deleted from the server without being delivered."""
    evil = (b"From: attacker@evil.test\r\nSubject: evil\r\n"
            b"Message-ID: <evil@evil.test>\r\n\r\nfirst part\n.\r\n"
            b"+OK 60 octets\r\nSubject: FORGED\r\n"
            b"Message-ID: <forged@evil.test>\r\n\r\nforged body\r\n.\r\n"
            b"rest of evil\r\n")
    msgs = [evil] + sample_messages(2, 600)
    with Case(env, messages=msgs) as c:
        sink = c.sink()
        runs = [c.run(), c.run()]
        ids = delivered_ids(sink)
        problems = []
        for check in (lambda: assert_no_loss(c, sink),
                      lambda: assert_deleted_only_delivered(c, runs)):
            try:
                check()
            except AssertionError as e:
                problems.append(str(e))
        if "<forged@evil.test>" in ids:
            problems.append("a forged message (part of another message's "
                            "body) was delivered as a message of its own")
        for d in sink.dumps():
            if header(d, "Message-ID") == "<evil@evil.test>" and \
                    b"rest of evil" not in d:
                problems.append("the attacker's message was delivered "
                                "truncated at the bare-LF dot")
        assert not problems, "%s\ndelivered Message-IDs: %s\nexpunged: " \
            "%s\nrun 1:\n%s" % ("\n".join(problems), ids,
                                 c.srv.expunged_uids(), runs[0].tail(8))


def test_odd_messages(env):
    """M19: an empty message, one without headers, one whose body lacks
    the final line end: no crash; each is delivered once or left on the
    server (never deleted undelivered)."""
    msgs = [b"", b"no header line at all, and no line end",
            b"Subject: no final CRLF\r\nMessage-ID: <nofinal@remote.test>"
            b"\r\n\r\nlast line without CRLF"]
    with Case(env, messages=msgs) as c:
        sink = c.sink()
        r = c.run()
        assert_deleted_only_delivered(c, [r])
        assert len(sink.dumps()) == len(r.delivered_uids())
        assert len(r.delivered_uids()) + len(c.srv.remaining()) >= 3
        for d in sink.dumps():
            if b"nofinal@" in d:
                assert b"last line without CRLF" in d
        r2 = c.run()
        assert len(sink.dumps()) == len(set(r.delivered_uids()) |
                                        set(r2.delivered_uids())), \
            "a message was delivered twice"


def test_failing_account_does_not_stop_others(env):
    """I6: one account fails ([AUTH]), the other is fetched normally in
    the same run; exit 1 because one session failed."""
    with Case(env, n=3, auth_fail_code="[AUTH]") as bad:
        good = FakePOP3(sample_messages(4, 800), users={FAKE_USER: FAKE_PW},
                        tls="implicit", certfile=env.pki.server_cert,
                        keyfile=env.pki.server_key)
        try:
            sink = bad.sink()
            bad.h.account("good", password=FAKE_PW, host="localhost",
                          port=good.port, user=FAKE_USER, tls="implicit",
                          ca_file=env.pki.ca_file, keep=False,
                          deliver_to=["rcpt@local.test"])
            r = bad.run(rcs=(1,))
            assert_each_once(delivered_ids(sink),
                             message_ids(sample_messages(4, 800)))
            assert good.remaining() == []
            assert_all_on_server(bad)
            assert r.sessions("good")[0]["error"] is None
            assert r.sessions("fake")[0]["error"]
        finally:
            good.stop()


@timeout(90)
def test_pipelining_many_messages(env):
    """PIPELINING advertised, 300 messages, keep=no: hauld pipelines its
    RETRs (a RETR goes out before the previous message arrived), every
    message delivered exactly once and deleted."""
    msgs = [make_message(3000 + i, size=600 + (i % 17) * 250, crlf=True,
                         tricky=i % 4 == 0) for i in range(300)]
    with Case(env, messages=msgs, tls=None) as c:
        sink = c.sink()
        r = c.run(rcs=(0,))
        s = r.session()
        assert (s["delivered"], s["deleted"]) == (300, 300), s
        assert_each_once(delivered_ids(sink), c.ids())
        assert c.srv.remaining() == []
        sent, got, pipelined = set(), set(), False
        for ln in r.log.splitlines():
            m = re.search(r"pop3: C: RETR (\d+)$", ln)
            if m:
                n = int(m.group(1))
                if n - 1 >= 1 and n - 1 not in got:
                    pipelined = True
                sent.add(n)
            m = re.search(r"pop3: S: message (\d+),", ln)
            if m:
                got.add(int(m.group(1)))
        assert pipelined, "no RETR was sent before the previous message " \
            "arrived: not pipelined"


def test_no_pipelining_naive_server(env):
    """PIPELINING not advertised and the server discards input queued
    behind a command: hauld must not pipeline; all delivered once."""
    with Case(env, n=40, tls=None, no_pipelining="drop") as c:
        sink = c.sink()
        c.run(rcs=(0,))
        discarded = c.srv.lines(kinds=("discarded",))
        assert not discarded, "hauld pipelined without PIPELINING: %s" % (
            [d.raw for d in discarded][:5],)
        assert_each_once(delivered_ids(sink), c.ids())
        assert c.srv.remaining() == []
