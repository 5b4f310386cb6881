# ISC License; see LICENSE.
"""hauld against a hostile IMAP server (tests/fixtures/fakeimap.py): the
reliability.md 4.2 cases not covered by test_imap_faults.py.  Each test
names its M case and checks, besides its expected outcome, the invariants
of 4.0: hauld ends by itself (exit 0/1, no signal, no harness timeout: I6,
I7), no test secret in its output and no credential in the clear (I5),
nothing expunged that was not delivered (I1, I4), nothing delivered twice
(I2).

M7/M8 (certificate and old TLS), M9 (no fallback from implicit TLS), M22
(SASL continuations: OAUTHBEARER error, "+" in the wrong state, invalid
base64), M23 (deeply nested lists), M27 (UID reused under the same
UIDVALIDITY), M31 (foreign \\Deleted), M32 (EXISTS flood and EXISTS going
down during IDLE), M34 (login response codes), M38 (slowloris), M42
(cleartext-only server).
"""

import base64
import json
import os
import ssl

import fakepki
import haulfix
from fakeimap import FakeIMAP, sample_message, sample_messages
from haulfix import timeout
from hauldrun import Hauld, SmtpSink, message_ids
from imaprun import Daemon, delivered, delivered_uids, imap_account

TIMEOUT = 40

USER = "fetcher"
PW = "Adv-imap-pw-Hq73Ws"
TOKEN = "ya29.Adv-imap-token-Kk20Pq9Xz"


def setup_module(env):
    haulfix.need_root()
    haulfix.need_binaries("smtp-sink", "openssl")
    env.need("hauld", "haulctl")
    env.pki = fakepki.make_pki(os.path.join(env.tmpdir, "pki"))


class Case:
    """One test's fake IMAP server, smtp-sink and hauld config."""

    def __init__(self, env, messages=None, n=3, tls="implicit", keep=False,
                 account=None, password=PW, **kw):
        self.env = env
        self.msgs = list(messages if messages is not None
                         else sample_messages(n, 700))
        skw = {}
        if tls:
            skw = {"tls": tls, "certfile": env.pki.cert,
                   "keyfile": env.pki.key}
        self.srv = FakeIMAP({"INBOX": self.msgs}, users={USER: password},
                            **skw, **kw)
        self.sink = SmtpSink(os.path.join(env.tmpdir, "sink")).start()
        self.h = Hauld(env.hauld, os.path.join(env.tmpdir, "hauld"))
        self.h.smtp(self.sink.port)
        self.h.delivery_opts.update(retry_min=1, retry_max=2)
        opts = {"host": "localhost", "port": self.srv.port, "user": USER,
                "keep": keep, "deliver_to": ["rcpt@local.test"],
                "timeout": 5, "connect_timeout": 5}
        if tls:
            opts.update(tls=tls, ca_file=env.pki.ca_cert)
        else:
            opts.update(tls="none", allow_plaintext=True)
        opts.update(account or {})
        imap_account(self.h, "fake", password, **opts)
        self.runs = []

    def run(self, rcs=(0, 1), timeout=25):
        r = self.h.run(timeout=timeout)
        self.runs.append(r)
        check_invariants(self, r, rcs)
        return r

    def ids(self, idx=None):
        all_ = message_ids(self.msgs)
        return all_ if idx is None else [all_[i - 1] for i in idx]

    def got(self):
        return message_ids(self.sink.dumps())

    def close(self):
        self.sink.stop()
        self.srv.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_invariants(c, r, rcs):
    if r is not None:
        r.check(c.h, rcs=rcs)
    assert not c.srv.errors, c.srv.errors
    if c.srv.tls_mode is not None:
        assert not c.srv.saw_credentials_before_tls(), c.srv.dump()
        assert not c.srv.saw_before_tls(PW.encode())
    done = set()
    for x in c.runs:
        done |= set(delivered_uids(x, folder="INBOX"))
    bad = set(c.srv.expunged_uids("INBOX")) - done
    assert not bad, "expunged but never delivered: %s" % sorted(bad)
    got = c.got()
    dup = sorted({m for m in got if got.count(m) > 1})
    assert not dup, "delivered twice: %s" % dup


def all_on_server(c):
    assert c.srv.remaining_uids() == list(range(1, len(c.msgs) + 1)), \
        (c.srv.remaining_uids(), c.srv.dump())


def refused(c, reason, creds=False):
    r = c.run(rcs=(1,))
    assert r.grep(reason), "log does not name %r:\n%s" % (reason, r.tail())
    assert c.sink.dumps() == [] and delivered(r) == []
    if not creds:
        sent = c.srv.lines("LOGIN") + c.srv.lines("AUTHENTICATE")
        assert not sent, "credentials sent:\n" + c.srv.dump()
    assert not c.srv.lines("SELECT") and not c.srv.lines("EXAMINE")
    all_on_server(c)
    return r


def recovers(c, keep=False):
    c.srv.clear_faults()
    c.run(rcs=(0,))
    assert sorted(c.got()) == sorted(c.ids()), (c.got(), c.ids())
    if not keep:
        assert c.srv.remaining_uids() == []


# --------------------------------------------------------------------------
# M7/M8/M9: TLS


def test_m7_self_signed_cert_imap(env):
    """M7 (IMAP): a certificate from a CA hauld does not trust (the fake
    PKI's own CA is not configured: system store): refused, no command."""
    with Case(env, account={"ca_file": None}) as c:
        del c.h.accounts["fake"]["ca_file"]
        refused(c, r"certificate verification failed")
        assert c.srv.commands() == [], c.srv.dump()


def test_m8_tls_1_1_only_imap(env):
    """M8 (IMAP): the server speaks only TLS 1.0/1.1: refused."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(env.pki.cert, env.pki.key)
    ctx.minimum_version = ssl.TLSVersion.TLSv1
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with Case(env, ssl_context=ctx) as c:
        refused(c, r"TLS handshake failed|protocol version|unsupported")
        assert c.srv.commands() == [] and c.srv.tls_errors


def test_m9_implicit_to_cleartext_port_no_fallback_imap(env):
    """M9 (IMAP): tls=implicit against a port greeting in cleartext with
    STARTTLS offered: the handshake fails, no IMAP command, no second
    connection."""
    with Case(env, tls="starttls") as c:
        c.h.update("fake", tls="implicit")
        refused(c, r"TLS|handshake|wrong version|packet length|record")
        verbs = {"CAPABILITY", "STARTTLS", "LOGIN", "AUTHENTICATE",
                 "LOGOUT"}
        assert not [v for v in c.srv.commands() if v in verbs], \
            c.srv.dump()
        assert c.srv.connections == 1


# --------------------------------------------------------------------------
# M22: SASL continuations (scripted server, implicit TLS)


def _b64(s):
    return base64.b64encode(s.encode()).decode()


def _oauth_case(env, steps, auth="oauthbearer", rc=1):
    greet = ("* OK [CAPABILITY IMAP4rev1 SASL-IR AUTH=OAUTHBEARER "
             "AUTH=XOAUTH2 AUTH=PLAIN] ready")
    with Case(env, script=[("send", greet)] + steps, password=TOKEN,
              account={"auth": auth}) as c:
        tok = os.path.join(env.tmpdir, "token.sh")
        with open(tok, "w") as f:
            f.write("#!/bin/sh\nprintf '%s\\n' '" + TOKEN + "'\n")
        os.chmod(tok, 0o700)
        del c.h.accounts["fake"]["password_file"]
        c.h.update("fake", password_command=[tok])
        c.h.secrets.add(TOKEN)
        r = c.run(rcs=(rc,))
        assert not c.srv.script_errors, (c.srv.script_errors, c.srv.dump())
        assert c.sink.dumps() == []
        return c, r


def test_m22_oauthbearer_json_error_answered_with_01(env):
    """M22 (RFC 7628 3.2.3): the OAUTHBEARER attempt is answered with a
    JSON error challenge: hauld sends the single %x01 (AQ==), takes the
    NO, logs the status, and treats it as a credential failure."""
    err = _b64(json.dumps({"status": "invalid_token", "scope": "mail"}))
    c, r = _oauth_case(env, [
        ("expect", r"\S+ AUTHENTICATE OAUTHBEARER \S+"),
        ("send", "+ " + err),
        ("expect", r"AQ==$"),
        ("send", "{tag:1} NO [AUTHENTICATIONFAILED] invalid token"),
        ("drain",)])
    assert r.grep(r"invalid_token"), r.tail()
    assert r.grep(r"refused the credentials"), r.tail()


def test_m22_xoauth2_error_answered_with_empty_line(env):
    """M22: XOAUTH2's error challenge is answered with an empty line."""
    err = _b64(json.dumps({"status": "401", "schemes": "Bearer"}))
    c, r = _oauth_case(env, [
        ("expect", r"\S+ AUTHENTICATE XOAUTH2 \S+"),
        ("send", "+ " + err),
        ("expect", r"$"),
        ("send", "{tag:1} NO [AUTHENTICATIONFAILED] no"),
        ("drain",)], auth="xoauth2")
    assert r.grep(r"refused the credentials"), r.tail()


def test_m22_continuation_to_login_is_wrong_state(env):
    """M22 (CVE-2025-61962 class): "+" in answer to LOGIN (no
    continuation is legal there): protocol error, the password is not sent
    a second time, no crash."""
    greet = "* OK [CAPABILITY IMAP4rev1] ready"
    with Case(env, script=[("send", greet),
                           ("expect", r"\S+ LOGIN "),
                           ("send", "+ " + _b64("more please")),
                           ("drain",)]) as c:
        r = c.run(rcs=(1,))
        assert r.grep(r"protocol|unexpected|continuation"), r.tail()
        logins = [ln for ln in c.srv.transcript if PW.encode() in ln.raw]
        assert len(logins) == 1, c.srv.dump()
        assert c.sink.dumps() == []


def test_m22_invalid_base64_challenge(env):
    """M22: AUTHENTICATE PLAIN without SASL-IR; the server's "+" carries
    invalid base64: protocol error, credentials never sent."""
    greet = "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready"
    with Case(env, script=[("send", greet),
                           ("expect", r"\S+ AUTHENTICATE PLAIN\s*$"),
                           ("send", "+ ***not base64***"),
                           ("drain",)], account={"auth": "plain"}) as c:
        r = c.run(rcs=(1,))
        assert r.grep(r"challenge"), r.tail()
        blob = base64.b64encode(("\0%s\0%s" % (USER, PW)).encode())
        assert not any(blob in ln.raw for ln in c.srv.transcript), \
            c.srv.dump()


# --------------------------------------------------------------------------
# M23: nesting


def test_m23_deeply_nested_list(env):
    """M23: an untagged FETCH with 5000 nested parentheses before the
    SELECT completion: the depth cap (32) makes it a protocol error at
    once (no stack exhaustion, no crash); a later sane session delivers
    everything once."""
    deep = b"* 1 FETCH (BODYSTRUCTURE " + b"(" * 5000 + b")" * 5000 + \
        b")\r\n"
    with Case(env, garbage={"at": "SELECT", "mode": "before",
                            "data": deep}) as c:
        r = c.run(rcs=(1,))
        assert r.grep(r"protocol error|nest|depth"), r.tail()
        assert c.sink.dumps() == []
        all_on_server(c)
        recovers(c)


# --------------------------------------------------------------------------
# M27: UID reused under the same UIDVALIDITY


def test_m27_uid_reused_same_uidvalidity(env):
    """M27: run 1 (keep=yes) delivers UIDs 1-3; the folder is rebuilt with
    the same UIDVALIDITY (a broken server) and different messages under
    UIDs 1-3: haul trusts (UIDVALIDITY, UID) and does not fetch them again
    (documented in docs/security.md; nothing is deleted either)."""
    with Case(env, keep=True) as c:
        c.run(rcs=(0,))
        uv = c.srv.folder_info("INBOX")[0]
        other = sample_messages(3, 900, start=50)
        c.srv.recreate_folder("INBOX", other)
        c.srv.change_uidvalidity("INBOX", uv, renumber=False)
        assert c.srv.folder_info("INBOX")[0] == uv
        r2 = c.run(rcs=(0,))
        assert delivered(r2) == [], delivered(r2)
        assert not set(message_ids(other)) & set(c.got())
        assert c.srv.expunged_uids() == []


# --------------------------------------------------------------------------
# M31: foreign \Deleted


def test_m31_foreign_deleted_never_expunged_by_us(env):
    """M31: another client set \\Deleted on UID 3, which hauld cannot
    fetch (NO): hauld (UIDPLUS) removes only what it delivered, with UID
    EXPUNGE of its own UIDs; UID 3 stays, no bare EXPUNGE is sent."""
    with Case(env, fetch_no=3) as c:
        c.srv.set_flags("INBOX", 3, ["\\Deleted"])
        r = c.run()
        assert sorted(c.got()) == sorted(c.ids([1, 2]))
        assert not c.srv.lines("EXPUNGE"), c.srv.commands()
        assert c.srv.lines("UID EXPUNGE")
        for ln in c.srv.lines("UID EXPUNGE"):
            assert b"3" not in ln.args.split(b",") and \
                ln.args.strip() != b"1:*", ln.raw
        assert c.srv.remaining_uids() == [3], c.srv.remaining_uids()
        assert sorted(delivered_uids(r)) == [1, 2]


# --------------------------------------------------------------------------
# M32: EXISTS during IDLE


def _daemon(env, **kw):
    c = Case(env, keep=True, account={"idle": True, "poll_interval": 3600},
             **kw)
    c.h.global_opts["control_socket"] = os.path.join(c.h.dir, "ctl.sock")
    return c


@timeout(40)
def test_m32_exists_flood_during_idle(env):
    """M32: 200 messages arrive in a burst while hauld idles (200 EXISTS
    pushed back to back): each is delivered exactly once, over the same
    single connection, and hauld idles again."""
    with _daemon(env) as c:
        d = Daemon(c.h)
        try:
            assert d.ctl("fetch", "fake").returncode == 0
            assert c.srv.wait_idling(1, "INBOX", 10), d.tail()
            new = [sample_message(1000 + i, 400) for i in range(200)]
            for m in new:
                c.srv.add_message("INBOX", m)
            assert c.srv.wait_for(lambda: len(c.sink.dumps()) == 203, 20), \
                (len(c.sink.dumps()), d.tail())
            assert c.srv.wait_idling(1, "INBOX", 10), "IDLE not re-entered"
            assert c.srv.connections == 1, c.srv.connections
            assert d.stop() == 0, d.tail()
            r = d.run()
            c.runs.append(r)
            check_invariants(c, r, (0,))
            want = c.ids() + message_ids(new)
            assert sorted(c.got()) == sorted(want)
        finally:
            d.close()


@timeout(40)
def test_m32_exists_during_a_fetch_round(env):
    """M32: mail that arrives while a round fetches bodies ("* 4 EXISTS"
    before the FETCH's tagged OK, past the UIDs the round listed) is
    fetched by another round before hauld idles, not at the next IDLE
    refresh (minutes later)."""
    import fakeimap
    orig = fakeimap._Session.cmd_FETCH
    added = []
    late = sample_message(4000, 500)

    def cmd_FETCH(sess, point, tag, args, uid_mode=False):
        items = sess._fetch_items(args[1]) if len(args) == 2 else []
        if not added and any(i.upper().startswith("BODY") for i in items):
            added.append(c.srv.add_message("INBOX", late))
        return orig(sess, point, tag, args, uid_mode)

    with _daemon(env) as c:
        fakeimap._Session.cmd_FETCH = cmd_FETCH
        d = Daemon(c.h)
        try:
            assert d.ctl("fetch", "fake").returncode == 0
            assert c.srv.wait_for(lambda: len(c.sink.dumps()) == 4, 8), \
                (len(c.sink.dumps()), added, d.tail())
            assert added, "the hook did not fire"
            assert c.srv.wait_idling(1, "INBOX", 10), "IDLE not entered"
            assert c.srv.connections == 1, c.srv.connections
            assert d.stop() == 0, d.tail()
            r = d.run()
            c.runs.append(r)
            check_invariants(c, r, (0,))
            assert sorted(c.got()) == sorted(c.ids() + message_ids([late]))
        finally:
            fakeimap._Session.cmd_FETCH = orig
            d.close()


@timeout(40)
def test_m32_exists_going_down_without_expunge(env):
    """M32: while hauld idles the server claims "* 1 EXISTS" (3 before, no
    EXPUNGE): a protocol error; hauld reconnects (resync), delivers a
    message added afterwards, and never delivers or removes anything
    twice."""
    with _daemon(env) as c:
        d = Daemon(c.h)
        try:
            assert d.ctl("fetch", "fake").returncode == 0
            assert c.srv.wait_idling(1, "INBOX", 10), d.tail()
            c.srv.push(b"* 1 EXISTS\r\n", "INBOX")
            d.wait_log(r"EXISTS|protocol error", 1, 10)
            assert c.srv.wait_for(lambda: c.srv.connections >= 2, 10), \
                d.tail()
            new = sample_message(77, 500)
            c.srv.add_message("INBOX", new)
            assert c.srv.wait_for(lambda: len(c.sink.dumps()) == 4, 15), \
                d.tail()
            d.stop()
            r = d.run()
            c.runs.append(r)
            check_invariants(c, r, (0, 1))
            assert sorted(c.got()) == sorted(c.ids() + message_ids([new]))
        finally:
            d.close()


# --------------------------------------------------------------------------
# M34: login response codes


def test_m34_inuse_is_temporary_imap(env):
    """M34 (IMAP): NO [INUSE] at login: temporary, no credential alert."""
    with Case(env, auth_fail_code="[INUSE]") as c:
        r = refused(c, r"temporary error", creds=True)
        assert not r.grep(r"refused the credentials")


def test_m34_authenticationfailed_is_credential_imap(env):
    """M34 (IMAP): NO [AUTHENTICATIONFAILED]: the credential alert."""
    with Case(env, auth_fail_code="[AUTHENTICATIONFAILED]") as c:
        r = refused(c, r"refused the credentials", creds=True)
        assert not r.grep(r"temporary error")


# --------------------------------------------------------------------------
# M38: slowloris


@timeout(60)
def test_m38_slow_body_imap(env):
    """M38 (IMAP): bodies trickle at 20 bytes/s: the progress deadline
    ends the session within ~timeout; nothing partial delivered, nothing
    removed; then a normal run delivers all once."""
    with Case(env, slow={"UID FETCH": 0.05}) as c:
        r = c.run(rcs=(1,))
        assert r.elapsed < 15, "took %.1fs" % r.elapsed
        assert r.grep(r"deadline|timed out|timeout"), r.tail()
        assert c.sink.dumps() == []
        all_on_server(c)
        recovers(c)


@timeout(60)
def test_m38_slow_greeting_imap(env):
    """M38 (IMAP): the greeting trickles at 1 byte per 0.5 s: the session
    ends by its deadline, before any credential."""
    with Case(env, slow={"GREETING": 0.5}) as c:
        r = refused(c, r"deadline|timed out|timeout")
        assert r.elapsed < 12, "took %.1fs" % r.elapsed


# --------------------------------------------------------------------------
# M42: cleartext-only server


def test_m42_cleartext_only_server_imap(env):
    """M42 (IMAP): no STARTTLS, LOGIN and AUTH=PLAIN offered in the clear;
    account wants starttls: refused before LOGIN/AUTHENTICATE."""
    with Case(env, tls=None) as c:
        c.h.update("fake", tls="starttls", ca_file=env.pki.ca_cert)
        del c.h.accounts["fake"]["allow_plaintext"]
        refused(c, r"STARTTLS|TLS")
        assert not c.srv.saw_before_tls(PW.encode())
