# ISC License; see LICENSE.
"""Self-tests of tests/fixtures/fakeimap.py: the fake server must be a
faithful IMAP server before its faults can mean anything.  Driven by
imaplib and a raw literal-aware client; no hauld needed.  Each test takes
the harness's env (unused).

Runnable alone: python3 tests/integration/test_fakeimap.py [-v] [name...]
"""

import atexit
import base64
import imaplib
import os
import re
import shutil
import signal
import socket
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
import fakeimap  # noqa: E402
from fakeimap import FakeIMAP, sample_messages  # noqa: E402

MSGS = sample_messages(3)
_pki_cache = []


def _pki():
    """The throwaway CA + localhost cert, made once per process."""
    if not _pki_cache:
        if not fakepki.have_openssl():
            raise unittest.SkipTest("openssl CLI not installed")
        d = tempfile.mkdtemp(prefix="fakeimap-pki-")
        atexit.register(shutil.rmtree, d, True)
        _pki_cache.append(fakepki.make_pki(d))
    return _pki_cache[0]


def _tls(**kw):
    p = _pki()
    return dict(certfile=p.cert, keyfile=p.key, **kw)


def _ctx():
    return fakepki.client_context(_pki().ca_cert)


class Raw:
    """A minimal IMAP client over a plain or TLS socket that reads
    responses with their literals."""

    def __init__(self, port, timeout=3.0, tls_ctx=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout)
        if tls_ctx is not None:
            self.sock = tls_ctx.wrap_socket(self.sock,
                                            server_hostname="localhost")
        self.buf = b""
        self.n = 0

    def send(self, data):
        self.sock.sendall(data if isinstance(data, bytes) else
                          data.encode() + b"\r\n")

    def _more(self):
        d = self.sock.recv(65536)
        if not d:
            raise EOFError("EOF; buffered %r" % self.buf[:300])
        self.buf += d

    def line(self):
        while b"\r\n" not in self.buf:
            self._more()
        ln, self.buf = self.buf.split(b"\r\n", 1)
        return ln

    def response(self):
        """One response, literals inline ({n}CRLF data), no final CRLF."""
        out = self.line()
        while True:
            m = re.search(rb"\{(\d+)\}$", out)
            if not m:
                return out
            n = int(m.group(1))
            while len(self.buf) < n:
                self._more()
            out += b"\r\n" + self.buf[:n]
            self.buf = self.buf[n:]
            out += self.line()

    def cmd(self, text):
        """Send 'TAG text'; (untagged responses, tagged line)."""
        self.n += 1
        tag = "t%d" % self.n
        self.send("%s %s" % (tag, text))
        return self.until(tag)

    def until(self, tag):
        unt = []
        while True:
            r = self.response()
            if r.startswith(tag.encode() + b" "):
                return unt, r
            unt.append(r)

    def login(self, user="u", pw="p"):
        unt, t = self.cmd("LOGIN %s %s" % (user, pw))
        assert b" OK " in t, t
        return t

    def read_all(self, wait=2.0):
        self.sock.settimeout(wait)
        data = self.buf
        while True:
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                return data
            if not d:
                return data
            data += d

    def starttls(self, ctx):
        assert not self.buf, self.buf
        self.sock = ctx.wrap_socket(self.sock, server_hostname="localhost")

    def close(self):
        self.sock.close()


def _silent(r, wait=0.2):
    r.sock.settimeout(wait)
    try:
        d = r.sock.recv(100)
    except socket.timeout:
        return True
    raise AssertionError("expected silence, got %r" % d)


def _ok(srv):
    assert not srv.errors, srv.errors
    assert not srv.violations, srv.violations


def _client(srv, user="u", pw="p"):
    c = imaplib.IMAP4("127.0.0.1", srv.port, timeout=5)
    c.login(user, pw)
    return c


def _uid_body(c, uid):
    typ, data = c.uid("FETCH", str(uid), "(BODY.PEEK[])")
    assert typ == "OK", data
    return data[0][1]


# ---------------------------------------------------------------------------
# the model


def test_happy_path_delete_persists(env):
    with FakeIMAP(MSGS) as srv:
        c = _client(srv)
        typ, data = c.select("INBOX")
        assert (typ, data) == ("OK", [b"3"])
        uv = int(c.untagged_responses["UIDVALIDITY"][0])
        assert uv == srv.folder_info()[0]
        assert c.untagged_responses["UIDNEXT"] == [b"4"]
        typ, data = c.uid("FETCH", "1:*", "(UID RFC822.SIZE)")
        assert data == [b"%d (UID %d RFC822.SIZE %d)" % (i + 1, i + 1, len(m))
                        for i, m in enumerate(MSGS)]
        for i, m in enumerate(MSGS):
            assert _uid_body(c, i + 1) == m
        c.uid("STORE", "1,3", "+FLAGS.SILENT", r"(\Deleted)")
        typ, data = c.uid("EXPUNGE", "1:3")
        assert typ == "OK", data
        assert c.untagged_responses.pop("EXPUNGE") == [b"3", b"1"]
        assert srv.remaining_uids() == [2]
        c.logout()
        srv.wait_idle()
        assert srv.expunged_uids() == [1, 3]
        assert srv.body_fetches() == [1, 2, 3]
        ev = srv.uid_events()
        assert [(e.verb, e.uid) for e in ev] == [
            ("FETCH", 1), ("FETCH", 2), ("FETCH", 3), ("DELETED", 1),
            ("DELETED", 3), ("EXPUNGE", 1), ("EXPUNGE", 3)], ev
        assert all(a.mono <= b.mono for a, b in zip(ev, ev[1:]))
        # the mailbox persists across connections, UIDs are kept
        c = _client(srv)
        typ, data = c.select("INBOX", readonly=True)
        assert data == [b"1"]
        typ, data = c.uid("FETCH", "1:*", "(UID)")
        assert data == [b"1 (UID 2)"]
        c.logout()
        assert srv.connections == 2 and srv.logins("u") == [1, 2]
        assert srv.commands(conn=2) == ["CAPABILITY", "LOGIN", "EXAMINE",
                                        "UID FETCH", "LOGOUT"]
        assert srv.sessions[1].selects == [("EXAMINE", "INBOX")]
        assert srv.sessions[0].logout_received
        _ok(srv)


def test_examine_and_peek_never_set_seen(env):
    with FakeIMAP(MSGS) as srv:
        c = _client(srv)
        c.select("INBOX", readonly=True)
        typ, data = c.uid("FETCH", "1", "(BODY[])")      # not PEEK
        assert typ == "OK" and data[0][1] == MSGS[0]
        typ, data = c.uid("STORE", "1", "+FLAGS", r"(\Deleted)")
        assert typ == "NO", (typ, data)
        typ, _ = c.expunge()
        assert typ == "NO"
        c.select("INBOX")                                 # read-write
        _uid_body(c, 2)                                   # PEEK
        assert srv.flag_changes() == []
        typ, data = c.uid("FETCH", "3", "(BODY[])")
        assert b"FLAGS (\\Seen)" in data[1], data
        ch = srv.flag_changes(flag="\\Seen")
        assert [(x.uid, x.implicit, x.added) for x in ch] == \
            [(3, True, ("\\Seen",))]
        assert srv.flags("INBOX", 3) == {"\\Seen"}
        assert srv.flags("INBOX", 1) == set()
        typ, data = c.fetch("1", "(RFC822.HEADER)")
        assert data[0][1] == fakeimap.header_section(MSGS[0])
        assert srv.flags("INBOX", 1) == set()
        typ, data = c.uid("FETCH", "2", "(RFC822)")
        assert data[0][1] == MSGS[1] and srv.flags("INBOX", 2) == {"\\Seen"}
        c.logout()
        _ok(srv)


def test_uid_fetch_ranges(env):
    with FakeIMAP(sample_messages(5), uidvalidity=7) as srv:
        c = _client(srv)
        c.select("INBOX")
        typ, data = c.uid("FETCH", "4:*", "(UID)")
        assert data == [b"4 (UID 4)", b"5 (UID 5)"]
        # n:* with n above the highest UID still returns the last message
        typ, data = c.uid("FETCH", "99:*", "(UID)")
        assert data == [b"5 (UID 5)"], data
        typ, data = c.uid("FETCH", "2,4:3", "(UID FLAGS)")
        assert data == [b"2 (UID 2 FLAGS ())", b"3 (UID 3 FLAGS ())",
                        b"4 (UID 4 FLAGS ())"]
        for args in (("UID", "FETCH", "0:2", "(UID)"),
                     ("FETCH", "6", "(UID)")):     # 6 > EXISTS
            try:
                c._simple_command(*args)
                raise AssertionError("%r accepted" % (args,))
            except imaplib.IMAP4.error as e:
                assert "BAD" in str(e), e
        typ, data = c.fetch("2:3", "(UID RFC822.SIZE INTERNALDATE FLAGS)")
        assert re.match(rb'2 \(UID 2 RFC822.SIZE \d+ INTERNALDATE '
                        rb'"\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d \+0000" '
                        rb'FLAGS \(\)\)', data[0]), data
        typ, data = c.uid("FETCH", "1", "(BODY.PEEK[HEADER.FIELDS "
                                        "(MESSAGE-ID SUBJECT)])")
        assert data[0][1] == (b"Subject: test message 1\r\nMessage-ID: "
                              b"<fakeimap-INBOX-1@example.test>\r\n\r\n")
        typ, data = c.uid("FETCH", "1", "(BODY.PEEK[]<0.4>)")
        assert data[0][1] == b"From", data
        assert srv.body_fetches() == [], "partial fetches are not bodies"
        c.logout()
        assert srv.folder_info() == (7, 6, 5)
        # an empty mailbox: 1:* matches nothing (no BAD)
    with FakeIMAP([]) as srv:
        c = _client(srv)
        assert c.select("INBOX") == ("OK", [b"0"])
        typ, data = c.uid("FETCH", "1:*", "(UID RFC822.SIZE)")
        assert typ == "OK" and data == [None], data
        c.logout()
        _ok(srv)


def test_uidplus_expunge_only_the_set(env):
    with FakeIMAP(sample_messages(4)) as srv:
        c = _client(srv)
        c.select("INBOX")
        c.uid("STORE", "1:4", "+FLAGS.SILENT", r"(\Deleted)")
        assert [e.uid for e in srv.uid_events("DELETED")] == [1, 2, 3, 4]
        c.uid("EXPUNGE", "2")
        assert srv.remaining_uids() == [1, 3, 4]
        c.uid("STORE", "3", "-FLAGS", r"(\Deleted)")
        c.expunge()                             # every \Deleted message
        assert srv.remaining_uids() == [3]
        assert srv.expunged_uids() == [2, 1, 4]
        c.logout()
    with FakeIMAP(MSGS, no_uidplus=True) as srv:
        c = _client(srv)
        assert "UIDPLUS" not in c.capabilities
        typ, caps = c.capability()
        assert b"UIDPLUS" not in caps[0] and b"MOVE" in caps[0]
        c.select("INBOX")
        c.uid("STORE", "1", "+FLAGS.SILENT", r"(\Deleted)")
        try:
            c.uid("EXPUNGE", "1")
            raise AssertionError("UID EXPUNGE accepted without UIDPLUS")
        except imaplib.IMAP4.error as e:
            assert "Unknown command" in str(e)
        assert srv.remaining_uids() == [1, 2, 3]
        c.logout()
        _ok(srv)


def test_copy_move_and_trycreate(env):
    with FakeIMAP({"INBOX": sample_messages(3), "Archive": []}) as srv:
        c = _client(srv)
        c.select("INBOX")
        typ, data = c.uid("MOVE", "2", "Archive")
        assert typ == "OK", data
        assert srv.remaining_uids() == [1, 3]
        assert srv.remaining("Archive") == [MSGS[1]]
        assert srv.expunged_uids() == [2]
        assert [(e.verb, e.uid) for e in srv.uid_events()
                if e.verb in ("MOVE", "EXPUNGE")] == [("MOVE", 2),
                                                       ("EXPUNGE", 2)]
        typ, data = c._simple_command("UID", "COPY", "1", "Archive")
        uv = srv.folder_info("Archive")[0]
        assert data == [b"[COPYUID %d 1 2] Copy completed." % uv], data
        typ, data = c._simple_command("UID", "COPY", "1", "Nowhere")
        assert typ == "NO" and b"TRYCREATE" in data[0]
        assert srv.remaining_uids() == [1, 3]
        c.logout()
    with FakeIMAP(MSGS, no_move=True) as srv:
        c = _client(srv)
        c.select("INBOX")
        typ, caps = c.capability()
        assert b" MOVE" not in caps[0]
        try:
            c.uid("MOVE", "1", "INBOX")
            raise AssertionError("MOVE accepted with no_move")
        except imaplib.IMAP4.error:
            pass
        c.logout()
        _ok(srv)


def test_list_status_create_delete(env):
    boxes = {"INBOX": MSGS, "Lists/a": sample_messages(2, folder="Lists/a"),
             "Lists/b": [], "Other": []}
    with FakeIMAP(boxes) as srv:
        c = _client(srv)
        typ, data = c.list('""', "Lists/*")
        assert data == [b'(\\HasNoChildren) "/" "Lists/a"',
                        b'(\\HasNoChildren) "/" "Lists/b"'], data
        typ, data = c.list('""', "%")
        names = [d.rsplit(b" ", 1)[1] for d in data]
        assert names == [b'"INBOX"', b'"Lists/a"', b'"Lists/b"',
                         b'"Other"'] or b'"Lists/a"' not in names, data
        typ, data = c.list('""', "inbox")
        assert data == [b'(\\HasNoChildren) "/" "INBOX"'], data
        typ, data = c.status('"Lists/a"', "(MESSAGES UIDNEXT UIDVALIDITY "
                                          "UNSEEN)")
        uv = srv.folder_info("Lists/a")[0]
        assert data == [b'"Lists/a" (MESSAGES 2 UIDNEXT 3 UIDVALIDITY %d '
                        b'UNSEEN 2)' % uv], data
        assert c.create("New")[0] == "OK"
        assert c.create("New")[0] == "NO"
        assert "New" in srv.folders()
        assert c.delete("New")[0] == "OK"
        assert c.delete("INBOX")[0] == "NO"
        assert c.select("Nope")[0] == "NO"
        c.logout()
        _ok(srv)


def test_search(env):
    with FakeIMAP(sample_messages(5)) as srv:
        srv.set_flags("INBOX", 2, ["\\Seen"])
        srv.set_flags("INBOX", 4, ["\\Deleted", "\\Seen"])
        c = _client(srv)
        c.select("INBOX")
        s = lambda *k: c.uid("SEARCH", None, *k)[1][0]   # noqa: E731
        assert s("ALL") == b"1 2 3 4 5"
        assert s("UNSEEN") == b"1 3 5"
        assert s("SEEN", "UNDELETED") == b"2"
        assert s("UID", "3:*") == b"3 4 5"
        assert s("NOT", "DELETED") == b"1 2 3 5"
        assert s("OR", "UID", "1", "UID", "5") == b"1 5"
        assert s("HEADER", "Message-ID", "INBOX-3@") == b"3"
        assert s("SUBJECT", "message 2") == b"2"
        assert s("BEFORE", "1-Jan-2000") == b""
        assert s("SINCE", "1-Jan-2000") == b"1 2 3 4 5"
        assert s("LARGER", "100000") == b""
        typ, data = c.search(None, "2:3")
        assert data == [b"2 3"]
        c.logout()
        _ok(srv)


def test_append_with_literals(env):
    with FakeIMAP([], no_literal_plus=True) as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        data = b"Subject: appended\r\n\r\nbody\0with NUL\nand bare LF\r\n"
        r.send("a1 APPEND INBOX (\\Seen) {%d}" % len(data))
        assert r.line() == b"+ OK"
        r.send(data + b"\r\n")
        unt, t = r.until("a1")
        uv = srv.folder_info()[0]
        assert t == b"a1 OK [APPENDUID %d 1] Append completed." % uv, t
        assert srv.messages()[0].data == data
        assert srv.messages()[0].flags == ("\\Seen",)
        # a non-synchronizing literal without LITERAL+ is recorded as a
        # client violation (and accepted)
        r.send(b"a2 APPEND INBOX {4+}\r\nabcd\r\n")
        unt, t = r.until("a2")
        assert b"OK" in t
        assert srv.violations and "LITERAL+" in srv.violations[0]
        srv.violations.clear()
        # LOGIN with a literal password is one recorded command
        r2 = Raw(srv.port)
        r2.line()
        r2.send("l1 LOGIN u {1}")
        assert r2.line() == b"+ OK"
        r2.send(b"p\r\n")
        assert b"l1 OK" in r2.until("l1")[1]
        cmds = srv.lines("LOGIN")
        assert cmds[-1].raw == b"l1 LOGIN u {1}\r\np", cmds[-1]
        r.close()
        r2.close()
        assert srv.remaining()[1] == b"abcd"
        _ok(srv)


def test_sequence_views_and_unsolicited(env):
    """Another session's EXPUNGE and new mail reach this session at its
    next command (NOOP), EXPUNGE never during FETCH."""
    with FakeIMAP(sample_messages(3)) as srv:
        a, b = _client(srv), _client(srv)
        a.select("INBOX")
        b.select("INBOX")
        b.uid("STORE", "1", "+FLAGS.SILENT", r"(\Deleted)")
        b.uid("EXPUNGE", "1")
        srv.add_message("INBOX", sample_message_x(9))
        typ, data = a.fetch("1:3", "(UID)")  # no EXPUNGE during FETCH
        assert [d for d in data if b"UID" in d] == [b"2 (UID 2)",
                                                    b"3 (UID 3)"], data
        assert "EXPUNGE" not in a.untagged_responses
        assert a.untagged_responses.get("EXISTS")[-1] == b"4"
        assert "FETCH" not in a.untagged_responses, "flag noise"
        a.noop()
        assert a.untagged_responses.get("EXPUNGE") == [b"1"], \
            a.untagged_responses
        typ, data = a.uid("FETCH", "1:*", "(UID)")
        assert data == [b"1 (UID 2)", b"2 (UID 3)", b"3 (UID 4)"], data
        a.logout()
        b.logout()
        _ok(srv)


def sample_message_x(i):
    return fakeimap.sample_message(i, 300)


def test_idle_push_at_once(env):
    with FakeIMAP(MSGS) as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        r.cmd("SELECT INBOX")
        r.send("i1 IDLE")
        assert r.line() == b"+ idling"
        assert srv.wait_idling(1, "INBOX") and srv.sessions[0].idle_count == 1
        t0 = time.monotonic()
        uid = srv.add_message("INBOX", sample_message_x(4))
        assert uid == 4
        assert r.line() == b"* 4 EXISTS"
        assert time.monotonic() - t0 < 0.5
        srv.expunge("INBOX", 1)
        assert r.line() == b"* 1 EXPUNGE"
        srv.set_flags("INBOX", 2, ["\\Flagged"])
        assert r.line() == b"* 1 FETCH (FLAGS (\\Flagged))"
        srv.push(b"* OK [ALERT] pushed\r\n")
        assert r.line() == b"* OK [ALERT] pushed"
        r.send("DONE")
        assert r.line() == b"i1 OK Idle completed."
        assert not srv.idling()
        assert [ln.raw for ln in srv.lines(kinds=("done",))] == [b"DONE"]
        # a second IDLE announces what happened in between at once
        srv.add_message("INBOX", sample_message_x(5))
        r.send("i2 IDLE")
        assert r.line() == b"+ idling"
        assert r.line() == b"* 4 EXISTS"
        r.send("DONE")
        assert r.line() == b"i2 OK Idle completed."
        r.close()
        srv.wait_idle()
        assert srv.sessions[0].idle_count == 2
        _ok(srv)


def test_idle_in_two_folders_two_sessions(env):
    boxes = {"INBOX": MSGS, "Lists/a": []}
    with FakeIMAP(boxes) as srv:
        rs = []
        for box in ("INBOX", "Lists/a"):
            r = Raw(srv.port)
            r.line()
            r.login()
            r.cmd('SELECT "%s"' % box)
            r.send("i IDLE")
            assert r.line() == b"+ idling"
            rs.append(r)
        assert srv.wait_idling(2)
        assert len(srv.idling("Lists/a")) == 1
        srv.add_message("Lists/a", b"Subject: a\r\n\r\nx\r\n")
        assert rs[1].line() == b"* 1 EXISTS"
        assert _silent(rs[0])
        for r in rs:
            r.close()
        _ok(srv)


# ---------------------------------------------------------------------------
# TLS, authentication


def test_starttls_rules_and_discard(env):
    with FakeIMAP(MSGS, tls="starttls", **_tls()) as srv:
        r = Raw(srv.port)
        g = r.line()
        assert b"STARTTLS" in g and b"LOGINDISABLED" in g and \
            b"AUTH=" not in g, g
        unt, t = r.cmd("LOGIN u p")
        assert b"NO [PRIVACYREQUIRED]" in t
        assert srv.saw_credentials_before_tls()
        assert srv.saw_before_tls("LOGIN u p")
        # plaintext pipelined behind STARTTLS is discarded, not executed
        r.send(b"s1 STARTTLS\r\ns2 LOGIN u p\r\n")
        assert r.line() == b"s1 OK Begin TLS negotiation now."
        r.starttls(_ctx())
        unt, t = r.cmd("CAPABILITY")
        assert b"STARTTLS" not in unt[0] and b"AUTH=PLAIN" in unt[0], unt
        r.login()
        assert [ln.raw for ln in srv.lines(kinds=("discarded",))] == \
            [b"s2 LOGIN u p"]
        assert len(srv.credentials_before_tls()) == 2
        assert srv.sessions[0].tls and srv.lines("LOGIN")[-1].tls
        r.close()
    with FakeIMAP(MSGS, tls="starttls", **_tls()) as srv:
        c = imaplib.IMAP4("127.0.0.1", srv.port, timeout=5)
        c.starttls(ssl_context=_ctx())
        c.login("u", "p")
        c.logout()
        assert not srv.saw_credentials_before_tls()
        assert srv.commands() == ["CAPABILITY", "STARTTLS", "CAPABILITY",
                                  "LOGIN", "LOGOUT"]
        _ok(srv)


def test_implicit_tls_and_sasl_plain(env):
    with FakeIMAP(MSGS, tls="implicit", **_tls()) as srv:
        c = imaplib.IMAP4_SSL("127.0.0.1", srv.port, ssl_context=_ctx(),
                              timeout=5)
        ir = base64.b64encode(b"\0u\0p").decode()
        typ, data = c._simple_command("AUTHENTICATE", "PLAIN", ir)
        assert typ == "OK", data
        c.logout()
        r = Raw(srv.port, tls_ctx=_ctx())
        r.line()
        r.send("a1 AUTHENTICATE PLAIN")
        assert r.line() == b"+ "
        r.send(base64.b64encode(b"\0u\0wrong") + b"\r\n")
        unt, t = r.until("a1")
        assert b"NO [AUTHENTICATIONFAILED]" in t, t
        r.close()
        srv.wait_idle()
        assert srv.logins() == [1]
        assert [ln.kind for ln in srv.transcript
                if ln.conn == 2] == ["cmd", "sasl"]
        assert not srv.saw_credentials_before_tls()
        _ok(srv)


def test_tls_faults(env):
    with FakeIMAP(MSGS, tls="starttls", no_starttls=True, **_tls()) as srv:
        r = Raw(srv.port)
        g = r.line()
        assert b"STARTTLS" not in g and b"AUTH=PLAIN" in g
        assert b"BAD" in r.cmd("STARTTLS")[1]
        r.login()           # a stripped server takes plaintext logins
        r.close()
    with FakeIMAP(MSGS, tls="starttls", starttls_err=True, **_tls()) as srv:
        r = Raw(srv.port)
        r.line()
        assert r.cmd("STARTTLS")[1] == b"t1 NO TLS not available"
        r.close()
    with FakeIMAP(MSGS, tls="starttls",
                  starttls_err={"cond": "BAD", "text": "nope"},
                  **_tls()) as srv:
        r = Raw(srv.port)
        r.line()
        assert r.cmd("STARTTLS")[1] == b"t1 BAD nope"
        r.close()
    inj = b"t2 OK LOGIN completed\r\n"
    with FakeIMAP(MSGS, tls="starttls", inject_after_starttls=inj,
                  **_tls()) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), 3)
        s.recv(1000)
        s.sendall(b"t1 STARTTLS\r\n")
        time.sleep(0.2)
        data = s.recv(1000)
        assert data == b"t1 OK Begin TLS negotiation now.\r\n" + inj, data
        s.close()
        _ok(srv)


def test_greeting_faults(env):
    with FakeIMAP(MSGS, preauth=True) as srv:
        r = Raw(srv.port)
        g = r.line()
        assert g.startswith(b"* PREAUTH [CAPABILITY IMAP4rev1") and \
            b"UIDPLUS" in g, g
        unt, t = r.cmd("SELECT INBOX")
        assert b"OK" in t
        r.close()
        srv.wait_idle()
        assert srv.sessions[0].user == "u"
    with FakeIMAP(MSGS, greeting="* BYE go away") as srv:
        r = Raw(srv.port)
        assert r.line() == b"* BYE go away"
        r.close()
    with FakeIMAP(MSGS, no_greeting_caps=True) as srv:
        r = Raw(srv.port)
        assert r.line() == b"* OK fakeimap ready."
        r.close()
    with FakeIMAP(MSGS, auth_fail_code={"code": "[UNAVAILABLE]",
                                        "times": 1}) as srv:
        r = Raw(srv.port)
        r.line()
        assert r.cmd("LOGIN u p")[1] == b"t1 NO [UNAVAILABLE] " \
            b"Authentication failed."
        assert b"t2 OK" in r.cmd("LOGIN u p")[1]
        r.close()
    with FakeIMAP(MSGS, capabilities={"post_auth": ["IMAP4rev1", "X"]}) \
            as srv:
        r = Raw(srv.port)
        assert b"AUTH=PLAIN" in r.line()
        assert r.login().endswith(b"[CAPABILITY IMAP4rev1 X] Logged in")
        r.close()
        _ok(srv)


def test_fault_names_are_checked(env):
    for bad in ({"no_such_fault": True}, {"literal_short": "x"},
                {"garbage": {"at": "SELECT", "data": b"x", "mode": "odd"}}):
        try:
            FakeIMAP(MSGS, start=False, faults=bad).stop()
        except (ValueError, TypeError):
            continue
        raise AssertionError("accepted %r" % bad)


# ---------------------------------------------------------------------------
# per-message faults (raw client)


def _selected(srv, tls_ctx=None):
    r = Raw(srv.port, tls_ctx=tls_ctx)
    r.line()
    r.login()
    r.cmd("SELECT INBOX")
    return r


def _size(i):
    return len(MSGS[i - 1])


def test_literal_short_and_long(env):
    with FakeIMAP(MSGS, literal_short=2) as srv:
        r = _selected(srv)
        assert r.cmd("UID FETCH 1 BODY.PEEK[]")[0][0].endswith(MSGS[0] +
                                                              b")")
        r.send("f2 UID FETCH 2 BODY.PEEK[]")
        data = r.read_all()
        assert data == b"* 2 FETCH (UID 2 BODY[] {%d}\r\n" % _size(2) + \
            MSGS[1][:10], data
        srv.wait_idle()
        assert [(e.verb, e.uid) for e in srv.uid_events()] == \
            [("FETCH", 1), ("FETCH-CUT", 2)]
    with FakeIMAP(MSGS, literal_short={3: 100}) as srv:
        r = _selected(srv)
        r.send("f UID FETCH 3 BODY.PEEK[]")
        data = r.read_all()
        assert data.endswith(b"{%d}\r\n" % _size(3) + MSGS[2][:100])
    with FakeIMAP(MSGS, literal_long=2) as srv:
        r = _selected(srv)
        r.send("f UID FETCH 2 BODY.PEEK[]")
        data = b""
        while b"f OK" not in data:
            data += r.sock.recv(65536)
        assert data == (b"* 2 FETCH (UID 2 BODY[] {10}\r\n" + MSGS[1] +
                        b")\r\nf OK Fetch completed.\r\n"), data
        r.close()
        _ok(srv)


def test_literal_huge_hangs(env):
    with FakeIMAP(MSGS, literal_huge={1: "4294967296"}) as srv:
        r = _selected(srv)
        r.send("f UID FETCH 1 BODY.PEEK[]")
        data = r.read_all(wait=0.5)
        assert data == b"* 1 FETCH (UID 1 BODY[] {4294967296}\r\n" + MSGS[0]
        r.send("g NOOP")
        assert _silent(r)
        assert srv.sessions[0].hung
        r.close()
        _ok(srv)


def test_body_nil_empty_no_and_no_uid(env):
    with FakeIMAP(MSGS, body_nil=1, body_empty=2, fetch_no={3: "[LIMIT] x"}) \
            as srv:
        r = _selected(srv)
        unt, t = r.cmd("UID FETCH 1 BODY.PEEK[]")
        assert unt == [b"* 1 FETCH (UID 1 BODY[] NIL)"] and b"OK" in t
        unt, t = r.cmd("UID FETCH 2 BODY.PEEK[]")
        assert unt == [b"* 2 FETCH (UID 2 BODY[] {0}\r\n)"], unt
        unt, t = r.cmd("UID FETCH 3 BODY.PEEK[]")
        assert unt == [] and t.endswith(b" NO [LIMIT] x"), (unt, t)
        # the listing is not affected
        unt, t = r.cmd("UID FETCH 1:* (UID RFC822.SIZE)")
        assert len(unt) == 3
        r.close()
        assert srv.body_fetches() == []
    with FakeIMAP(MSGS, fetch_no_uid=True) as srv:
        r = _selected(srv)
        unt, t = r.cmd("UID FETCH 2 BODY.PEEK[]")
        assert unt == [b"* 2 FETCH (BODY[] {%d}\r\n" % _size(2) + MSGS[1] +
                       b")"], unt
        r.close()
        _ok(srv)


def test_fetch_unasked(env):
    with FakeIMAP(MSGS, fetch_unasked={1: 3, 2: True}) as srv:
        r = _selected(srv)
        unt, t = r.cmd("UID FETCH 1 BODY.PEEK[]")
        assert unt == [b"* 3 FETCH (UID 3 BODY[] {%d}\r\n" % _size(3) +
                       MSGS[2] + b")",
                       b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % _size(1) +
                       MSGS[0] + b")"], unt
        unt, t = r.cmd("UID FETCH 2 BODY.PEEK[]")
        assert re.match(rb"\* 2 FETCH \(UID 100002 BODY\[\] \{\d+\}\r\n.*"
                        rb"<unasked-100002@fakeimap.test>", unt[0], re.S)
        assert unt[1].startswith(b"* 2 FETCH (UID 2 BODY[]")
        assert srv.flags("INBOX", 3) == set(), "unasked body set \\Seen"
        r.close()
        _ok(srv)


def test_expunge_during_fetch(env):
    with FakeIMAP(MSGS, expunge_during_fetch=2) as srv:
        r = _selected(srv)
        unt, t = r.cmd("UID FETCH 2 BODY.PEEK[]")
        assert unt[0] == b"* 1 EXPUNGE", unt
        assert unt[1].startswith(b"* 1 FETCH (UID 2 BODY[]"), unt
        assert srv.remaining_uids() == [1 + 1, 3]
        unt, t = r.cmd("UID FETCH 3 BODY.PEEK[]")
        assert unt[0].startswith(b"* 2 FETCH (UID 3 "), unt
        r.close()
        assert srv.expunged_uids() == [], "not a client expunge"
        _ok(srv)


def test_bye_faults(env):
    with FakeIMAP(MSGS, bye_mid_literal=1) as srv:
        r = _selected(srv)
        r.send("f UID FETCH 1 BODY.PEEK[]")
        data = r.read_all()
        half = _size(1) // 2
        assert data == b"* 1 FETCH (UID 1 BODY[] {%d}\r\n" % _size(1) + \
            MSGS[0][:half] + b"\r\n* BYE Server shutting down.\r\n", data
    with FakeIMAP(MSGS, bye_at_fetch=2) as srv:
        r = _selected(srv)
        r.send("f UID FETCH 1:2 BODY.PEEK[]")
        data = r.read_all()
        assert data.endswith(MSGS[0] + b")\r\n* BYE Server shutting "
                             b"down.\r\n"), data
        _ok(srv)


def test_select_faults(env):
    with FakeIMAP(MSGS, exists_value=4294967295, no_uidvalidity=True) as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        unt, t = r.cmd("SELECT INBOX")
        assert b"* 4294967295 EXISTS" in unt
        assert not [u for u in unt if b"UIDVALIDITY" in u]
        r.close()
    with FakeIMAP(MSGS, garbage={"at": "SELECT", "data": b"* 0 EXPUNGE\r\n",
                                 "mode": "before"}) as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        unt, t = r.cmd("SELECT INBOX")
        assert unt[-1] == b"* 0 EXPUNGE" and b"OK" in t
        r.close()
        _ok(srv)


def test_uidvalidity_change(env):
    with FakeIMAP(sample_messages(3)) as srv:
        uv0 = srv.folder_info()[0]
        r = _selected(srv)
        r.send("i IDLE")
        assert r.line() == b"+ idling"
        srv.wait_idling()
        srv.expunge("INBOX", 1)
        assert r.line() == b"* 1 EXPUNGE"
        uv1 = srv.change_uidvalidity("INBOX")
        assert uv1 != uv0
        assert r.line().startswith(b"* BYE")
        try:
            r.line()
            raise AssertionError("still connected")
        except (EOFError, OSError):
            pass
        c = _client(srv)
        c.select("INBOX", readonly=True)
        assert int(c.untagged_responses["UIDVALIDITY"][0]) == uv1
        typ, data = c.uid("FETCH", "1:*", "(UID)")
        assert data == [b"1 (UID 1)", b"2 (UID 2)"]
        assert _uid_body(c, 1) == MSGS[1]
        c.logout()
        uv2 = srv.recreate_folder("INBOX", [MSGS[0]])
        assert uv2 not in (uv0, uv1)
        assert srv.remaining() == [MSGS[0]] and srv.folder_info()[1] == 2
        # announce="code": a selected session is told, not dropped
        r = _selected(srv)
        uv3 = srv.change_uidvalidity("INBOX", announce="code")
        unt, t = r.cmd("NOOP")
        assert b"* OK [UIDVALIDITY %d] UIDs changed" % uv3 in unt, unt
        r.close()
        _ok(srv)


def test_idle_faults(env):
    with FakeIMAP(MSGS, idle_no_continuation=True) as srv:
        r = _selected(srv)
        r.send("i IDLE")
        assert _silent(r)
        assert srv.idling()
        r.close()
    with FakeIMAP(MSGS, idle_ignore_done=True) as srv:
        r = _selected(srv)
        r.send("i IDLE")
        assert r.line() == b"+ idling"
        r.send("DONE")
        assert _silent(r)
        assert srv.wait_for(lambda: srv.lines(kinds=("done",)))
        r.close()
    with FakeIMAP(MSGS, no_idle=True) as srv:
        r = _selected(srv)
        assert b"IDLE" not in r.cmd("CAPABILITY")[0][0]
        assert b"BAD" in r.cmd("IDLE")[1]
        r.close()
        _ok(srv)


def test_point_faults(env):
    with FakeIMAP(MSGS, hang_after="SELECT") as srv:
        r = Raw(srv.port)
        r.line()
        r.login()
        assert b"OK" in r.cmd("SELECT INBOX")[1]
        r.send("n NOOP")
        assert _silent(r)
        r.close()
    with FakeIMAP(MSGS, close_after=["UID FETCH", 2]) as srv:
        r = _selected(srv)
        assert b"OK" in r.cmd("UID FETCH 1 (UID)")[1]
        r.send("f UID FETCH 2 (UID)")
        assert r.read_all().endswith(b"f OK Fetch completed.\r\n")
    with FakeIMAP(MSGS, long_line=100000) as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), 3)
        got = b""
        while len(got) < 100000:
            got += s.recv(65536)
        assert got.startswith(b"* OK xxx") and len(got) == 100000 and \
            b"\n" not in got
        s.close()
    with FakeIMAP(MSGS, slow={"GREETING": 0.01}) as srv:
        t0 = time.monotonic()
        Raw(srv.port).line()
        assert time.monotonic() - t0 > 0.3
    with FakeIMAP(MSGS, hang_after="CONNECT") as srv:
        r = Raw(srv.port)
        assert _silent(r)
        r.close()
    with FakeIMAP(MSGS, faults_on=1, body_nil=True) as srv:
        for conn in (1, 2):
            r = _selected(srv)
            unt, _ = r.cmd("UID FETCH 1 BODY.PEEK[]")
            assert (b"NIL" in unt[0]) == (conn == 1), unt
            r.close()
        _ok(srv)


def test_nul_and_bare_lf_bodies_are_data(env):
    odd = [b"Subject: nul\r\n\r\nbefore\0after\r\n",
           b"Subject: lf\n\nbare\nlf\n.\nend\r\n",
           b"Subject: cr\r\n\r\nbare\rcr\r\n"]
    with FakeIMAP(odd) as srv:
        c = _client(srv)
        c.select("INBOX")
        for i, m in enumerate(odd):
            assert _uid_body(c, i + 1) == m
        typ, data = c.uid("FETCH", "1:*", "(RFC822.SIZE)")
        assert [int(re.search(rb"SIZE (\d+)", d).group(1)) for d in data] \
            == [len(m) for m in odd]
        c.logout()
        _ok(srv)


def test_script_mode(env):
    script = [("send", "* OK scripted"), ("expect", r"\S+ CAPABILITY"),
              ("send", "* CAPABILITY IMAP4rev1\r\n{tag} OK done"),
              ("expect", r"\S+ LOGOUT"), ("send", "* BYE"), ("close",)]
    with FakeIMAP(script=script) as srv:
        c = imaplib.IMAP4("127.0.0.1", srv.port, timeout=3)
        assert c.capabilities == ("IMAP4REV1",)
        try:
            c.logout()
        except (imaplib.IMAP4.abort, OSError):
            pass
        srv.wait_idle()
        assert not srv.script_errors, srv.script_errors
        _ok(srv)


def test_stop_with_idle_and_hung_sessions(env):
    srv = FakeIMAP(MSGS, hang_after="LOGIN")
    rs = [Raw(srv.port) for _ in range(3)]
    for r in rs:
        r.line()
        r.send("a LOGIN u p")
    time.sleep(0.1)
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 3
    assert srv.wait_idle(1)
    for r in rs:
        r.close()


def test_cli(env):
    p = subprocess.Popen([sys.executable, os.path.join(_FIX, "fakeimap.py"),
                          "--messages", "2", "--folder", "Lists/a:1"],
                         stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        port = int(line.strip().split("=")[1])
        c = imaplib.IMAP4("127.0.0.1", port, timeout=3)
        c.login("u", "p")
        assert c.select("INBOX") == ("OK", [b"2"])
        assert c.select('"Lists/a"') == ("OK", [b"1"])
        c.logout()
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
    tests = [(n, f) for n, f in globals().items()
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
    print("fakeimap self-test: %d passed, %d failed, %d skipped in %.2fs"
          % (len(tests) - failed - skipped, failed, skipped,
             time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
