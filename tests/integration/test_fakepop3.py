# ISC License; see LICENSE.
"""Self-tests of tests/fixtures/fakepop3.py: the fake server must be a
faithful POP3 server before its faults can mean anything.  Driven by poplib
and raw sockets; no hauld needed.  Each test takes the harness's env (unused).

Runnable alone: python3 tests/integration/test_fakepop3.py [-v] [name...]
"""

import atexit
import base64
import hashlib
import os
import poplib
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest

_FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                    "fixtures")
if _FIX not in sys.path:
    sys.path.insert(0, _FIX)

import fakepki  # noqa: E402
import fakepop3  # noqa: E402
from fakepop3 import FakePOP3, sample_messages  # noqa: E402

MSGS = sample_messages(3)
_pki_cache = []


def _pki():
    """The throwaway CA + localhost cert, made once per process."""
    if not _pki_cache:
        if not fakepki.have_openssl():
            raise unittest.SkipTest("openssl CLI not installed")
        d = tempfile.mkdtemp(prefix="fakepop3-pki-")
        atexit.register(shutil.rmtree, d, True)
        _pki_cache.append(fakepki.make_pki(d))
    return _pki_cache[0]


class Raw:
    """Minimal line client over a plain or TLS socket."""

    def __init__(self, port, timeout=3.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else
                          data.encode() + b"\r\n")

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.sock.recv(65536)
            if not d:
                raise EOFError("EOF; buffered %r" % self.buf[:200])
            self.buf += d
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def multi(self):
        out = []
        while True:
            ln = self.line()
            if ln == b".":
                return out
            out.append(ln[1:] if ln.startswith(b".") else ln)

    def cmd(self, c):
        self.send(c)
        return self.line()

    def login(self, user="u", pw="p"):
        assert self.cmd("USER " + user).startswith(b"+OK")
        r = self.cmd("PASS " + pw)
        assert r.startswith(b"+OK"), r
        return r

    def read_all(self):
        """Everything until EOF (for drops)."""
        data = self.buf
        while True:
            d = self.sock.recv(65536)
            if not d:
                return data
            data += d

    def starttls(self, ctx, host="localhost"):
        assert not self.buf
        self.sock = ctx.wrap_socket(self.sock, server_hostname=host)

    def close(self):
        self.sock.close()


def _no_reply(r, wait=0.15):
    r.sock.settimeout(wait)
    try:
        d = r.sock.recv(100)
    except socket.timeout:
        return True
    raise AssertionError("expected silence, got %r" % d)


def _joined(lines):
    return b"".join(ln + b"\r\n" for ln in lines)


def _ok(srv):
    assert not srv.errors, srv.errors


# ---------------------------------------------------------------------------
# the model


def test_happy_path_deletes(env):
    uids = ["uid-a", "uid-b", "uid-c"]
    with FakePOP3(MSGS, uids=uids) as srv:
        c = poplib.POP3("127.0.0.1", srv.port, timeout=3)
        c.user("u")
        c.pass_("p")
        assert c.stat() == (3, sum(len(m) for m in MSGS))
        _, lst, _ = c.list()
        assert lst == [b"%d %d" % (i + 1, len(m)) for i, m in enumerate(MSGS)]
        _, ul, _ = c.uidl()
        assert ul == [b"1 uid-a", b"2 uid-b", b"3 uid-c"]
        assert c.uidl(2) == b"+OK 2 uid-b"
        for i, m in enumerate(MSGS):
            _, lines, _ = c.retr(i + 1)
            assert _joined(lines) == m       # dot-stuffing round-trips
            c.dele(i + 1)
        try:
            c.retr(1)
            raise AssertionError("RETR of a deleted message succeeded")
        except poplib.error_proto as e:
            assert b"deleted" in e.args[0]
        assert c.quit().startswith(b"+OK")
        srv.wait_idle()
        assert srv.remaining() == []
        assert srv.expunged_uids() == uids
        assert srv.deleted_uids() == uids
        ev = srv.uid_events()
        assert [(e.verb, e.uid) for e in ev] == \
            [(v, u) for u in uids for v in ("RETR", "DELE")]
        assert all(a.mono <= b.mono for a, b in zip(ev, ev[1:]))
        assert srv.dele_count() == 3 and srv.connections == 1
        assert srv.sessions[0].committed and srv.sessions[0].user == "u"
        # state persists across connections
        c = poplib.POP3("127.0.0.1", srv.port, timeout=3)
        c.user("u")
        c.pass_("p")
        assert c.stat() == (0, 0)
        c.quit()
        assert srv.connections == 2
        assert srv.commands(conn=2) == ["USER", "PASS", "STAT", "QUIT"]
        _ok(srv)


def test_default_uids_stable_unique_legal(env):
    msgs = [MSGS[0], MSGS[0], MSGS[1]]     # duplicates still get unique UIDs
    a, b = FakePOP3(msgs, start=False), FakePOP3(msgs, start=False)
    try:
        ua, ub = a.remaining_uids(), b.remaining_uids()
        assert ua == ub and len(set(ua)) == 3
        for u in ua:
            assert 0 < len(u) <= 70 and all(0x21 <= ord(ch) <= 0x7e
                                             for ch in u)
    finally:
        a.stop()
        b.stop()


def test_dele_without_quit_keeps(env):
    with FakePOP3(MSGS) as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        assert r.cmd("DELE 1").startswith(b"+OK")
        assert r.cmd("DELE 1").startswith(b"-ERR")
        assert r.cmd("RSET").startswith(b"+OK")
        assert r.cmd("DELE 2").startswith(b"+OK")
        r.close()                                   # no QUIT
        assert srv.wait_idle()
        assert srv.remaining() == MSGS and srv.expunged_uids() == []
        assert not srv.sessions[0].committed
        # RSET really unmarked 1; QUIT commits only 2 in a new session
        r = Raw(srv.port)
        r.line()
        r.login()
        r.cmd("DELE 2")
        assert r.cmd("QUIT").startswith(b"+OK")
        assert srv.wait_idle()
        assert srv.remaining() == [MSGS[0], MSGS[2]]
        assert srv.dele_count() == 4          # refused DELEs count too
        _ok(srv)


def test_quit_err_keeps(env):
    with FakePOP3(MSGS, quit_err=True) as srv:
        c = poplib.POP3("127.0.0.1", srv.port, timeout=3)
        c.user("u")
        c.pass_("p")
        c.dele(1)
        c.dele(2)
        try:
            c.quit()
            raise AssertionError("QUIT should fail")
        except poplib.error_proto as e:
            assert e.args[0].startswith(b"-ERR")
        srv.wait_idle()
        assert srv.remaining() == MSGS
        assert srv.sessions[0].quit_received
        assert not srv.sessions[0].committed
        _ok(srv)


def test_drop_before_quit_reply(env):
    for mode, left in ((True, MSGS), ("commit", MSGS[1:])):
        with FakePOP3(MSGS, drop_before_quit_reply=mode) as srv:
            r = Raw(srv.port)
            r.line()
            r.login()
            r.cmd("DELE 1")
            r.send("QUIT")
            assert r.read_all() == b""           # closed, no reply
            srv.wait_idle()
            assert srv.remaining() == left, mode
            _ok(srv)


def test_dot_stuffing_edges_and_top(env):
    msgs = [b"Subject: x\r\n\r\nno final crlf",
            b"Subject: y\r\n\r\nbare\n.\nlf\r\n.\r\n",
            b""]
    with FakePOP3(msgs) as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        assert r.cmd("RETR 1") == b"+OK %d octets" % len(msgs[0])
        assert r.multi() == [b"Subject: x", b"", b"no final crlf"]
        r.send("RETR 2")
        r.line()
        # bare LF passes through untouched; only CRLF-lines are stuffed
        assert r.multi() == [b"Subject: y", b"", b"bare\n.\nlf", b"."]
        assert r.cmd("RETR 3") == b"+OK 0 octets"
        assert r.multi() == []
        assert r.cmd("TOP 2 0") == b"+OK"
        assert r.multi() == [b"Subject: y", b""]
        assert r.cmd("RETR 4").startswith(b"-ERR")
        assert r.cmd("RETR 0").startswith(b"-ERR")
        assert r.cmd("RETR x").startswith(b"-ERR")
        assert r.cmd("FOO").startswith(b"-ERR")
        assert r.cmd("QUIT").startswith(b"+OK")
        _ok(srv)


def test_state_rules(env):
    with FakePOP3(MSGS) as srv:
        r = Raw(srv.port)
        r.line()
        assert r.cmd("STAT").startswith(b"-ERR")        # not authenticated
        assert r.cmd("PASS p").startswith(b"-ERR")      # USER first
        assert r.cmd("USER u").startswith(b"+OK")
        assert r.cmd("PASS wrong") == b"-ERR [AUTH] Authentication failed."
        assert r.cmd("STLS").startswith(b"-ERR")        # tls=None
        r.login()
        assert r.cmd("USER u").startswith(b"-ERR")
        assert r.cmd("NOOP") == b"+OK"
        r.send("CAPA")
        assert r.line().startswith(b"+OK")
        caps = r.multi()
        assert b"USER" not in caps and b"UIDL" in caps
        assert r.cmd("QUIT").startswith(b"+OK")
        assert srv.saw_credentials_before_tls()     # plaintext server
        _ok(srv)


# ---------------------------------------------------------------------------
# authentication


def test_auth_mechanisms(env):
    with FakePOP3(MSGS, users={"u": "p w", "v": "q"}, apop=True) as srv:
        plain = base64.b64encode(b"\0u\0p w").decode()
        r = Raw(srv.port)
        greet = r.line()
        assert r.cmd("AUTH PLAIN " + plain).startswith(b"+OK")
        r.close()

        r = Raw(srv.port)
        r.line()
        assert r.cmd("AUTH PLAIN") == b"+ "
        assert r.cmd(base64.b64encode(b"u\0u\0p w").decode()) \
            .startswith(b"+OK")
        r.close()

        r = Raw(srv.port)
        r.line()
        assert r.cmd("AUTH LOGIN") == b"+ VXNlcm5hbWU6"
        assert r.cmd(base64.b64encode(b"v").decode()) == b"+ UGFzc3dvcmQ6"
        assert r.cmd(base64.b64encode(b"q").decode()).startswith(b"+OK")
        r.close()

        r = Raw(srv.port)
        greet = r.line()
        bad = base64.b64encode(b"\0u\0nope").decode()
        assert r.cmd("AUTH PLAIN " + bad) == \
            b"-ERR [AUTH] Authentication failed."
        assert r.cmd("AUTH PLAIN") == b"+ "
        assert r.cmd("*").startswith(b"-ERR")          # cancelled
        assert r.cmd("AUTH CRAM-MD5").startswith(b"-ERR")
        r.send("AUTH")
        assert r.line() == b"+OK" and r.multi() == [b"PLAIN", b"LOGIN"]
        # APOP with the greeting's timestamp
        ts = greet[greet.index(b"<"):]
        dig = hashlib.md5(ts + b"q").hexdigest()
        assert r.cmd("APOP v " + dig).startswith(b"+OK")
        r.close()
        srv.wait_idle()
        assert [s.user for s in srv.sessions] == ["u", "u", "v", "v"]
        sasl = [ln for ln in srv.transcript if ln.kind == "sasl"]
        assert len(sasl) == 4
        assert srv.commands().count("AUTH") == 7
        assert srv.saw_credentials_before_tls()
        _ok(srv)


def test_auth_fail_code(env):
    with FakePOP3(MSGS, auth_fail_code={"code": "[IN-USE]", "times": 1}) \
            as srv:
        r = Raw(srv.port)
        r.line()
        r.cmd("USER u")
        assert r.cmd("PASS p") == b"-ERR [IN-USE] Authentication failed."
        r.login()                               # only the first one failed
        r.close()
    with FakePOP3(MSGS, auth_fail_code="[LOGIN-DELAY 900]") as srv:
        for _ in range(2):
            r = Raw(srv.port)
            r.line()
            plain = base64.b64encode(b"\0u\0p").decode()
            assert r.cmd("AUTH PLAIN " + plain) == \
                b"-ERR [LOGIN-DELAY 900] Authentication failed."
            r.close()
        _ok(srv)


def test_lock_in_use(env):
    with FakePOP3(MSGS, lock=True) as srv:
        a = Raw(srv.port)
        a.line()
        a.login()
        b = Raw(srv.port)
        b.line()
        b.cmd("USER u")
        assert b.cmd("PASS p").startswith(b"-ERR [IN-USE]")
        a.cmd("QUIT")
        srv.wait_for(lambda: srv.sessions[0].closed)
        b.login()
        _ok(srv)


# ---------------------------------------------------------------------------
# TLS


def test_stls_verified_and_flags(env):
    pki = _pki()
    with FakePOP3(MSGS, tls="starttls", certfile=pki.cert,
                  keyfile=pki.key) as srv:
        c = poplib.POP3("localhost", srv.port, timeout=3)
        pre = c.capa()
        assert "STLS" in pre and "SASL" not in pre and "USER" not in pre
        c.stls(pki.client_context())
        post = c.capa()
        assert "STLS" not in post and post["SASL"] == ["PLAIN", "LOGIN"]
        c.user("u")
        c.pass_("p")
        c.dele(1)
        c.quit()
        srv.wait_idle()
        assert srv.remaining() == MSGS[1:]
        flags = [(ln.verb, ln.tls) for ln in srv.transcript]
        assert flags == [("CAPA", False), ("CAPA", False), ("STLS", False),
                         ("CAPA", True),
                         ("USER", True), ("PASS", True), ("DELE", True),
                         ("QUIT", True)], flags
        assert not srv.saw_credentials_before_tls()
        assert not srv.saw_before_tls(b"PASS")
        assert srv.sessions[0].tls

        # a client that logs in before STLS is refused and caught
        r = Raw(srv.port)
        r.line()
        assert r.cmd("USER u").startswith(b"+OK")
        assert r.cmd("PASS p").startswith(b"-ERR [AUTH] Plaintext")
        plain = base64.b64encode(b"\0u\0p").decode()
        assert r.cmd("AUTH PLAIN " + plain).startswith(b"-ERR [AUTH]")
        r.close()
        srv.wait_idle()
        assert srv.saw_credentials_before_tls()
        assert [ln.verb for ln in srv.credentials_before_tls()] == \
            ["PASS", "AUTH"]
        assert srv.saw_before_tls(plain)

        # verification really happens: wrong name fails the handshake
        r = Raw(srv.port)
        r.line()
        assert r.cmd("STLS").startswith(b"+OK")
        try:
            r.starttls(pki.client_context(), host="wrong.example")
            raise AssertionError("hostname mismatch accepted")
        except ssl.SSLCertVerificationError:
            pass
        r.close()
        assert srv.wait_for(lambda: srv.tls_errors)
        _ok(srv)


def test_implicit_tls(env):
    pki = _pki()
    with FakePOP3(MSGS, tls="implicit", certfile=pki.cert,
                  keyfile=pki.key) as srv:
        c = poplib.POP3_SSL("localhost", srv.port, timeout=3,
                            context=pki.client_context())
        assert "STLS" not in c.capa()
        c.user("u")
        c.pass_("p")
        assert c.stat()[0] == 3
        c.quit()
        srv.wait_idle()
        assert all(ln.tls for ln in srv.transcript) and srv.transcript
        assert not srv.saw_credentials_before_tls()
        _ok(srv)


def test_inject_after_stls_same_segment(env):
    pki = _pki()
    inj = b"+OK injected\r\n"
    with FakePOP3(MSGS, tls="starttls", certfile=pki.cert, keyfile=pki.key,
                  inject_after_stls=inj) as srv:
        r = Raw(srv.port)
        r.line()
        r.send("STLS")
        select.select([r.sock], [], [], 3)
        got = r.sock.recv(4096)            # one recv: both in one write
        assert got == fakepop3.BEGIN_TLS + inj, got
        r.starttls(pki.client_context())  # the server still does TLS
        assert r.cmd("NOOP").startswith(b"-ERR")   # not authenticated
        r.login()
        r.close()
        srv.wait_idle()
        assert [ln.tls for ln in srv.lines()] == [False, True, True, True]
        _ok(srv)


def test_stls_faults(env):
    pki = _pki()
    kw = dict(tls="starttls", certfile=pki.cert, keyfile=pki.key)
    with FakePOP3(MSGS, no_stls=True, **kw) as srv:
        c = poplib.POP3("127.0.0.1", srv.port, timeout=3)
        assert "STLS" not in c.capa() and "USER" in c.capa()
        try:
            c._shortcmd("STLS")
            raise AssertionError("STLS accepted")
        except poplib.error_proto:
            pass
        c.user("u")
        c.pass_("p")                     # stripped: plaintext is accepted
        c.quit()
        assert srv.saw_credentials_before_tls()
    with FakePOP3(MSGS, stls_err="[SYS/TEMP] no TLS", **kw) as srv:
        r = Raw(srv.port)
        r.line()
        r.send("CAPA")
        r.line()
        assert b"STLS" in r.multi()
        assert r.cmd("STLS") == b"-ERR [SYS/TEMP] no TLS"
        r.close()
    with FakePOP3(MSGS, hang_after="STLS", **kw) as srv:
        r = Raw(srv.port)
        r.line()
        assert r.cmd("STLS").startswith(b"+OK")
        r.sock.settimeout(0.15)
        try:
            r.starttls(pki.client_context())
            raise AssertionError("handshake completed")
        except socket.timeout:
            pass
        r.close()
        _ok(srv)


def test_stls_discards_pipelined_plaintext(env):
    pki = _pki()
    with FakePOP3(MSGS, tls="starttls", certfile=pki.cert,
                  keyfile=pki.key) as srv:
        r = Raw(srv.port)
        r.line()
        r.send(b"STLS\r\nUSER u\r\n")
        assert r.line().startswith(b"+OK Begin")
        r.starttls(pki.client_context())
        assert r.cmd("PASS p").startswith(b"-ERR")     # USER was dropped
        r.close()
        srv.wait_idle()
        assert [(ln.kind, ln.text) for ln in srv.transcript] == \
            [("cmd", "STLS"), ("discarded", "USER u"), ("cmd", "PASS p")]
        _ok(srv)


# ---------------------------------------------------------------------------
# pipelining and listing faults


def test_pipelining_in_order(env):
    with FakePOP3(MSGS) as srv:
        uid2 = srv.remaining_uids()[1]
        r = Raw(srv.port)
        r.line()
        r.send(b"CAPA\r\nUSER u\r\nPASS p\r\nSTAT\r\nLIST\r\nUIDL 2\r\n"
               b"RETR 2\r\nDELE 2\r\nNOOP\r\nQUIT\r\n")
        assert r.line().startswith(b"+OK")
        assert b"PIPELINING" in r.multi()
        assert r.line() == b"+OK"
        assert r.line() == b"+OK Logged in."
        assert r.line() == b"+OK 3 %d" % sum(map(len, MSGS))
        assert r.line() == b"+OK" and len(r.multi()) == 3
        assert r.line() == b"+OK 2 " + uid2.encode()
        assert r.line().startswith(b"+OK %d octets" % len(MSGS[1]))
        assert _joined(r.multi()) == MSGS[1]
        assert r.line().startswith(b"+OK Marked")
        assert r.line() == b"+OK"
        assert r.line().startswith(b"+OK Logging out")
        assert r.read_all() == b""
        assert srv.remaining() == [MSGS[0], MSGS[2]]
        _ok(srv)


def test_no_pipelining(env):
    with FakePOP3(MSGS, no_pipelining=True) as srv:
        r = Raw(srv.port)
        r.line()
        r.send(b"CAPA\r\nNOOP\r\n")                # still answered
        r.line()
        assert b"PIPELINING" not in r.multi()
        assert r.line().startswith(b"-ERR")
    with FakePOP3(MSGS, no_pipelining="drop") as srv:
        r = Raw(srv.port)
        r.line()
        r.send(b"USER u\r\nPASS p\r\nSTAT\r\n")
        assert r.line() == b"+OK"
        _no_reply(r)                                # PASS, STAT lost
        r.close()
        srv.wait_idle()
        assert [ln.kind for ln in srv.transcript] == \
            ["cmd", "discarded", "discarded"]
        _ok(srv)


def test_capa_faults(env):
    with FakePOP3(MSGS, no_capa=True, no_uidl=True) as srv:
        r = Raw(srv.port)
        r.line()
        assert r.cmd("CAPA").startswith(b"-ERR")
        r.login()
        assert r.cmd("UIDL").startswith(b"-ERR")
        r.close()
    with FakePOP3(MSGS, no_uidl=True, login_delay=900, expire="NEVER") \
            as srv:
        c = poplib.POP3("127.0.0.1", srv.port, timeout=3).capa()
        assert "UIDL" not in c and c["LOGIN-DELAY"] == ["900"]
        assert c["EXPIRE"] == ["NEVER"]
    caps = {"pre_tls": ["STLS", "SASL PLAIN"], "post_tls": ["SASL XOAUTH2"]}
    with FakePOP3(MSGS, capabilities=caps) as srv:
        assert poplib.POP3("127.0.0.1", srv.port, timeout=3).capa() == \
            {"STLS": [], "SASL": ["PLAIN"]}
        _ok(srv)


def test_expire_zero_deletes_retrieved(env):
    with FakePOP3(MSGS, expire=0) as srv:
        c = poplib.POP3("127.0.0.1", srv.port, timeout=3)
        assert c.capa()["EXPIRE"] == ["0"]
        c.user("u")
        c.pass_("p")
        c.retr(2)
        c.quit()
        srv.wait_idle()
        assert srv.remaining() == [MSGS[0], MSGS[2]]
        assert srv.dele_count() == 0
        _ok(srv)


def test_uidl_and_list_overrides(env):
    uidl = ["1 dup", "2 dup", "0 zero", "3 " + "x" * 80, b"4 bad\x01uid"]
    with FakePOP3(MSGS, uidl_lines=uidl, list_lines=["1 -5", "7 10"]) as srv:
        c = poplib.POP3("127.0.0.1", srv.port, timeout=3)
        c.user("u")
        c.pass_("p")
        assert c.uidl()[1] == [b"1 dup", b"2 dup", b"0 zero",
                               b"3 " + b"x" * 80, b"4 bad\x01uid"]
        assert c.uidl(0) == b"+OK 0 zero"
        assert c.list()[1] == [b"1 -5", b"7 10"]
        try:
            c.uidl(9)
            raise AssertionError("UIDL 9 accepted")
        except poplib.error_proto:
            pass
        c.quit()
        _ok(srv)


def test_endless_listing(env):
    with FakePOP3(MSGS, endless_listing={"verb": "UIDL", "lines": 5000}) \
            as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        assert r.cmd("UIDL") == b"+OK"
        for k in range(1, 5001):
            assert r.line() == b"%d endless-%d" % (k, k)
        _no_reply(r)                                # never the "."
        r.close()
    with FakePOP3(MSGS, endless_listing="LIST") as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        assert r.cmd("LIST") == b"+OK"
        for _ in range(20000):                      # client gives up first
            r.line()
        r.close()
        assert srv.wait_idle()
        _ok(srv)


# ---------------------------------------------------------------------------
# connection-level faults


def test_drop_mid_retr(env):
    with FakePOP3(MSGS, drop_mid_retr=2) as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        r.send("RETR 1")
        r.line()
        assert _joined(r.multi()) == MSGS[0]
        r.cmd("DELE 1")
        r.send("RETR 2")
        assert r.line() == b"+OK %d octets" % len(MSGS[1])
        rest = r.read_all()                 # EOF after about half
        body = fakepop3.dot_stuff(MSGS[1])
        assert 0 < len(rest) < len(body) and body.startswith(rest)
        assert srv.wait_idle()
        assert srv.remaining() == MSGS          # nothing committed
        assert [e.verb for e in srv.uid_events()] == \
            ["RETR", "DELE", "RETR-DROPPED"]
        c = poplib.POP3("127.0.0.1", srv.port, timeout=3)
        c.user("u")
        c.pass_("p")
        try:
            c.retr(2)
            raise AssertionError("truncated RETR accepted")
        except (poplib.error_proto, EOFError, OSError):
            pass
        c.close()
        _ok(srv)


def test_retr_err(env):
    with FakePOP3(MSGS, retr_err={2: "[SYS/TEMP] disk"}) as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        assert r.cmd("RETR 2") == b"-ERR [SYS/TEMP] disk"
        r.send("RETR 3")
        assert r.line().startswith(b"+OK")
        r.multi()
        r.close()
    with FakePOP3(MSGS, retr_err=[1, 3]) as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        assert r.cmd("RETR 1").startswith(b"-ERR")
        assert r.cmd("RETR 3").startswith(b"-ERR")
        r.close()
        _ok(srv)


def test_greeting_and_long_line(env):
    with FakePOP3(MSGS, greeting="+OK hello <1.2@x>") as srv:
        assert Raw(srv.port).line() == b"+OK hello <1.2@x>"
    with FakePOP3(MSGS, greeting=b"-ERR go away\r\n") as srv:
        assert Raw(srv.port).line() == b"-ERR go away"
    with FakePOP3(MSGS, long_line=100000) as srv:
        r = Raw(srv.port)
        got = b""
        while len(got) < 100000:
            got += r.sock.recv(65536)
        _no_reply(r)                            # exactly N bytes, then hang
        assert len(got) == 100000 and got.startswith(b"+OK xxx")
        assert b"\n" not in got
        r.close()
    with FakePOP3(MSGS, long_line=["uidl", 5000]) as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        r.send("UIDL")
        got = b""
        while len(got) < 5000:
            got += r.sock.recv(65536)
        assert len(got) == 5000 and b"\r" not in got
        r.send("NOOP")                          # hung: recorded, no reply
        _no_reply(r)
        r.close()
        assert srv.wait_for(lambda: srv.commands()[-1] == "NOOP")
        _ok(srv)


def test_slow(env):
    with FakePOP3(MSGS, slow={"greeting": 0.01}) as srv:
        t = time.monotonic()
        r = Raw(srv.port)
        g = r.line()
        assert time.monotonic() - t >= 0.01 * len(g)
        t = time.monotonic()
        r.login()
        assert time.monotonic() - t < 0.5            # other replies fast
        r.close()
    with FakePOP3(MSGS, slow=0.2) as srv:            # stop() interrupts
        r = Raw(srv.port)
        assert r.sock.recv(10) == b"+"
        t = time.monotonic()
        srv.stop()
        # The rest of the greeting would take seconds at 0.2 s a byte.
        assert time.monotonic() - t < 1.0
        _ok(srv)


def test_hang_after(env):
    with FakePOP3(MSGS, hang_after="USER") as srv:
        r = Raw(srv.port)
        r.line()
        assert r.cmd("USER u") == b"+OK"
        r.send("PASS p")
        _no_reply(r)
        srv.wait_for(lambda: len(srv.commands()) == 2)
        assert srv.commands() == ["USER", "PASS"] and srv.sessions[0].hung
        r.close()
        assert srv.wait_idle()                  # peer close ends the hang
    with FakePOP3(MSGS, hang_after="connect") as srv:
        _no_reply(Raw(srv.port))                # not even a greeting
    with FakePOP3(MSGS, hang_after="greeting") as srv:
        r = Raw(srv.port)
        assert r.line().startswith(b"+OK")
        r.send("CAPA")
        _no_reply(r)
        _ok(srv)


def test_close_after(env):
    with FakePOP3(MSGS, close_after=["DELE", 2]) as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        assert r.cmd("DELE 1").startswith(b"+OK")
        assert r.cmd("DELE 2").startswith(b"+OK")
        r.send("QUIT")
        assert r.read_all() == b""
        srv.wait_idle()
        assert srv.remaining() == MSGS
        _ok(srv)


def test_garbage(env):
    g = [{"at": "connect", "data": b"\x00\xffjunk\r\n", "mode": "before"},
         {"at": "NOOP", "data": b"+OK extra\r\n"},
         {"at": "STAT", "data": b"* 1 EXISTS\r\n", "mode": "instead"},
         {"at": "USER", "data": "-ERR first\r\n", "mode": "before"}]
    with FakePOP3(MSGS, garbage=g) as srv:
        r = Raw(srv.port)
        assert r.line() == b"\x00\xffjunk"
        assert r.line().startswith(b"+OK fakepop3")
        assert r.cmd("USER u") == b"-ERR first"
        assert r.line() == b"+OK"
        assert r.cmd("PASS p").startswith(b"+OK")
        assert r.cmd("NOOP") == b"+OK"
        assert r.line() == b"+OK extra"
        assert r.cmd("STAT") == b"* 1 EXISTS"
        assert r.cmd("NOOP") == b"+OK"
        r.close()
        _ok(srv)


def test_script_mode(env):
    script = [[("send", "+OK scripted"), ("expect", r"USER u$"),
               ("send", b"+OK\r\n"), ("expect", "PASS"), ("send", "+OK"),
               ("expect", "RETR 1"), ("send", "+OK"), ("message", 1),
               ("garbage", b"\x00\x01"), ("close",)],
              [("send", "+OK two"), ("expect", "NOOP"), ("hang",)]]
    with FakePOP3(MSGS, script=script) as srv:
        c = poplib.POP3("127.0.0.1", srv.port, timeout=3)
        assert c.getwelcome() == b"+OK scripted"
        c.user("u")
        c.pass_("p")
        assert _joined(c.retr(1)[1]) == MSGS[0]
        c.close()
        for _ in range(2):          # the last script repeats
            r = Raw(srv.port)
            assert r.line() == b"+OK two"
            r.send("CAPA")          # mismatch: recorded, connection closed
            assert r.read_all() == b""
        assert len(srv.script_errors) == 2
        assert srv.script_errors[0][2] == b"CAPA"
        _ok(srv)


def test_faults_on_and_set_faults(env):
    with FakePOP3(MSGS, faults={"retr_err": 1}, faults_on=1) as srv:
        for expect in (b"-ERR", b"+OK"):
            r = Raw(srv.port)
            r.line()
            r.login()
            assert r.cmd("RETR 1").startswith(expect)
            r.close()
        srv.set_faults(greeting="+OK changed")
        srv.faults_on = None
        assert Raw(srv.port).line() == b"+OK changed"
        srv.clear_faults()
        assert Raw(srv.port).line().startswith(b"+OK fakepop3")
        srv.add_message(b"Subject: new\r\n\r\nhi\r\n", uid="new-1")
        assert srv.remaining_uids()[-1] == "new-1"
        _ok(srv)
    for bad in ({"no_such_fault": 1}, {"close_after": 5},
                {"garbage": {"at": "x", "data": b"", "mode": "bogus"}}):
        try:
            FakePOP3(MSGS, faults=bad, start=False).stop()
            raise AssertionError("accepted %r" % bad)
        except (ValueError, TypeError):
            pass


def test_stop_closes_everything(env):
    srv = FakePOP3(MSGS, hang_after="greeting")
    clients = [Raw(srv.port) for _ in range(3)]
    for c in clients:
        c.line()
    srv.wait_for(lambda: len(srv._active) == 3)
    t = time.monotonic()
    srv.stop()
    assert time.monotonic() - t < 2.0
    for c in clients:
        c.sock.settimeout(1)
        assert c.read_all() == b""              # EOF, not a timeout
    try:
        socket.create_connection(("127.0.0.1", srv.port), 1)
        raise AssertionError("still listening")
    except OSError:
        pass
    assert srv._listener.fileno() == -1
    assert all(not t.is_alive() for t in srv._threads)


def test_only_loopback(env):
    with FakePOP3(MSGS) as srv:
        assert srv._listener.getsockname()[0] == "127.0.0.1"


def test_cli(env):
    p = subprocess.Popen([sys.executable, os.path.join(_FIX, "fakepop3.py"),
                          "--port", "0", "--messages", "2", "--user", "a:b",
                          "--fault", "login_delay=60",
                          "--fault", "no_uidl"],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("PORT="), line
        port = int(line.strip()[5:])
        c = poplib.POP3("127.0.0.1", port, timeout=3)
        caps = c.capa()
        assert caps["LOGIN-DELAY"] == ["60"] and "UIDL" not in caps
        c.user("a")
        c.pass_("b")
        assert c.stat()[0] == 2
        c.quit()
        p.send_signal(signal.SIGTERM)
        assert p.wait(5) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


# ---------------------------------------------------------------------------

def _main(argv):
    verbose = "-v" in argv
    names = [a for a in argv if not a.startswith("-")]
    tests = [(n, f) for n, f in sorted(globals().items())
             if n.startswith("test_") and callable(f)
             and (not names or n in names)]
    failed = skipped = 0
    t0 = time.monotonic()
    for n, f in tests:
        t = time.monotonic()
        try:
            f(None)
            status = "ok"
        except unittest.SkipTest as e:
            skipped += 1
            status = "skip (%s)" % e
        except Exception:
            failed += 1
            import traceback
            status = "FAIL\n" + traceback.format_exc()
        if verbose or status != "ok":
            print("%-40s %5.2fs %s" % (n, time.monotonic() - t, status))
    print("fakepop3 self-test: %d passed, %d failed, %d skipped in %.2fs"
          % (len(tests) - failed - skipped, failed, skipped,
             time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
