# ISC License; see LICENSE.
"""hauld against a hostile POP3 server (tests/fixtures/fakepop3.py): the
reliability.md 4.2 cases not covered by test_pop3_faults.py and
test_pop3_tls.py.  Every test names its M case in its name and checks,
besides its expected outcome, the invariants of 4.0: hauld ends by itself
(exit 0/1, never a signal or the harness timeout: I6, I7), no test secret
in its output (I5), no credential in the clear (I5), nothing removed from
the server that was not delivered (I1, I4).

M7 (the certificate sub-cases not in test_pop3_tls.py), M8 (old TLS, NULL
ciphers), M9 (no fallback from implicit TLS), M17/M40 (endless and huge
listings: caps, bounded memory), M22 (SASL continuations), M27 (UID
reused), M34 (response codes: only [AUTH] is a credential failure), M35
(EXPIRE 0 with keep), M38 (slowloris: progress deadline, other accounts
unaffected), M42 (cleartext-only server), M43 (malformed APOP timestamp).
"""

import base64
import os
import ssl
import subprocess
import tempfile
import time

import haulfix
from haulfix import timeout
from hauldrun import Hauld, SmtpSink, Run, free_port, message_ids
from fakepop3 import FakePOP3, sample_message, sample_messages

TIMEOUT = 60
SETUP_TIMEOUT = 60

USER = "fetcher"
PW = "Adv-pop-pw-Zx81Qm"
PW2 = "Adv-pop-pw2-Lr55Kd"


def setup_module(env):
    haulfix.need_root()
    haulfix.need_binaries("smtp-sink", "openssl")
    env.need("hauld")
    env.pki = haulfix.make_pki(os.path.join(env.tmpdir, "pki"))
    extra_certs(env.pki)


def extra_certs(pki):
    """The M7 sub-cases haulfix's PKI lacks, each differing from the good
    server cert by one defect (all for host "localhost")."""
    d, ca, cakey = pki.dir, pki.ca_file, pki.ca_key
    local = "DNS:localhost,IP:127.0.0.1"
    pki.extra = {}
    mk = haulfix._make_leaf
    pki.extra["not_yet_valid"] = mk(d, "not_yet_valid", ca, cakey,
                                    "localhost", local,
                                    start="20990101000000Z",
                                    end="20990201000000Z")
    # SAN present, CN alone names the host: RFC 6125 says SAN wins.
    pki.extra["cn_only"] = mk(d, "cn_only", ca, cakey, "localhost",
                              "DNS:other.example")
    # "localhost\0.evil.example" in the SAN (raw DER: no CLI syntax for NUL)
    name = b"localhost\x00.evil.example"
    der = b"\x30" + bytes([len(name) + 2]) + b"\x82" + \
        bytes([len(name)]) + name
    pki.extra["nul_san"] = mk(d, "nul_san", ca, cakey, "evil.example",
                              "DER:" + der.hex())
    # a wildcard cannot stand for zero labels nor for the whole name
    pki.extra["wildcard"] = mk(d, "wildcard", ca, cakey, "*.localhost",
                               "DNS:*.localhost,DNS:*")
    # self-signed, CN and SAN right
    key = os.path.join(d, "self_signed.key")
    crt = os.path.join(d, "self_signed.crt")
    subprocess.run(["openssl", "req", "-x509", "-new", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", crt, "-days", "30",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=" + local],
                   check=True, capture_output=True, timeout=30)
    pki.extra["self_signed"] = (crt, key)


# --------------------------------------------------------------------------
# helpers


class Case:
    """One test's fake POP3 server, smtp-sink and hauld config."""

    def __init__(self, env, messages=None, n=3, tls="implicit", keep=False,
                 account=None, cert=None, ssl_context=None, **kw):
        self.env = env
        self.msgs = list(messages if messages is not None
                         else sample_messages(n, 700))
        skw = {}
        if tls:
            c, k = cert or env.pki.pair("server")
            skw = {"tls": tls, "certfile": c, "keyfile": k,
                   "ssl_context": ssl_context}
        self.srv = FakePOP3(self.msgs, users={USER: PW}, **skw, **kw)
        self.servers = [self.srv]
        self.sink = SmtpSink(os.path.join(env.tmpdir, "sink")).start()
        self.h = Hauld(env.hauld, os.path.join(env.tmpdir, "hauld"))
        self.h.smtp(self.sink.port)
        opts = {"host": "localhost", "port": self.srv.port, "user": USER,
                "keep": keep, "deliver_to": ["rcpt@local.test"],
                "timeout": 5, "connect_timeout": 5}
        if tls:
            opts.update(tls=tls, ca_file=env.pki.ca_file)
        else:
            opts.update(tls="none", allow_plaintext=True)
        opts.update(account or {})
        self.h.account("fake", password=PW, **opts)
        self.runs = []

    def good_account(self, name="good", n=2):
        """A second, healthy account on its own server (I6: one account's
        trouble never stops another)."""
        c, k = self.env.pki.pair("server")
        msgs = [sample_message(500 + i, 600) for i in range(n)]
        srv = FakePOP3(msgs, users={USER: PW2}, tls="implicit",
                       certfile=c, keyfile=k)
        self.servers.append(srv)
        self.h.account(name, password=PW2, host="localhost", port=srv.port,
                       user=USER, tls="implicit", ca_file=self.env.pki.ca_file,
                       keep=False, deliver_to=["rcpt@local.test"], timeout=5)
        return srv, msgs

    def run(self, rcs=(0, 1), timeout=30):
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
        for s in self.servers:
            s.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def check_invariants(c, r, rcs):
    r.check(c.h, rcs=rcs)                       # I5 (logs), I6, I7
    for srv in c.servers:
        assert not srv.errors, srv.errors
        if srv.tls_mode is not None:            # I5 on the wire
            assert not srv.saw_credentials_before_tls(), \
                "credentials before TLS:\n" + srv.dump()
            assert not srv.saw_before_tls(PW.encode()), srv.dump()
    # I1/I4: every DELEted UID was reported delivered in some run
    done = set()
    for x in c.runs:
        done |= set(x.delivered_uids())
    bad = set(c.srv.deleted_uids()) - done
    assert not bad, "DELE for UIDs never delivered: %s" % sorted(bad)
    got = c.got()
    dup = sorted({m for m in got if got.count(m) > 1})
    assert not dup, "delivered twice: %s" % dup          # I2


def assert_all_on_server(c):
    assert len(c.srv.remaining()) == len(c.msgs), \
        "mail left the server: %d of %d remain\n%s" % (
            len(c.srv.remaining()), len(c.msgs), c.srv.dump())


def refused(c, reason, rc=1, creds=False):
    """One run that must fail naming reason: nothing fetched, delivered or
    deleted, no credential (or none in the clear if creds)."""
    r = c.run(rcs=(rc,))
    assert r.grep(reason), "log does not name %r:\n%s" % (reason, r.tail())
    assert c.sink.dumps() == [] and not r.delivered_uids()
    assert not c.srv.lines("RETR") and c.srv.dele_count() == 0
    if not creds:
        sent = c.srv.lines("PASS") + c.srv.lines("AUTH") + \
            c.srv.lines("APOP") + c.srv.lines(kinds=("sasl",))
        assert not sent, "credentials sent:\n" + c.srv.dump()
    assert_all_on_server(c)
    return r


def recovers(c, keep=False):
    """With the faults cleared the next run delivers every message once."""
    c.srv.clear_faults()
    r = c.run(rcs=(0,))
    got = c.got()
    assert sorted(got) == sorted(c.ids()), (got, c.ids())
    if not keep:
        assert c.srv.remaining() == []
    return r


# --------------------------------------------------------------------------
# M7: more certificate failures (implicit TLS and STLS)


def _bad_cert(env, kind, reason, tls="implicit"):
    with Case(env, tls=tls, cert=env.pki.extra[kind]) as c:
        refused(c, r"certificate verification failed.*" + reason)
        cmds = c.srv.commands()
        if tls == "implicit":
            assert cmds == [], "commands over a bad TLS session: %s" % cmds
        else:
            assert cmds[cmds.index("STLS") + 1:] == [], c.srv.dump()


def test_m7_cert_not_yet_valid(env):
    """M7: notBefore in 2099: refused before any command."""
    _bad_cert(env, "not_yet_valid", "not yet valid")


def test_m7_cert_self_signed(env):
    """M7: a self-signed certificate for the right name: refused."""
    _bad_cert(env, "self_signed", "self.signed")


def test_m7_cert_nul_in_san(env):
    """M7: SAN "localhost\\0.evil.example" (the NUL-prefix attack): no
    match for localhost."""
    _bad_cert(env, "nul_san", "hostname mismatch")


def test_m7_cert_cn_matches_but_san_does_not(env):
    """M7: CN=localhost but a SAN without it: the SAN wins (RFC 6125)."""
    _bad_cert(env, "cn_only", "hostname mismatch")


def test_m7_cert_wildcards_do_not_cover_host(env):
    """M7: SAN "*.localhost" and "*" (CN "*.localhost"): a wildcard never
    stands for zero labels or a whole name; over STLS too."""
    _bad_cert(env, "wildcard", "hostname mismatch", tls="starttls")


# --------------------------------------------------------------------------
# M8: old protocol versions and NULL ciphers


def _server_ctx(env, maxv, minv=None, ciphers=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*env.pki.pair("server"))
    if minv is not None:
        ctx.minimum_version = minv
    ctx.maximum_version = maxv
    ctx.set_ciphers(ciphers or "DEFAULT:@SECLEVEL=0")
    return ctx


def _old_tls(env, ctx, reason):
    with Case(env, ssl_context=ctx) as c:
        r = refused(c, reason)
        assert c.srv.commands() == [], c.srv.dump()
        assert c.srv.tls_errors, "the server saw no failed handshake"
        return r


def test_m8_tls_1_0_and_1_1_only(env):
    """M8 (RFC 8996): the server speaks only TLS 1.0/1.1: hauld (TLS 1.2
    minimum) refuses the handshake, nothing is sent."""
    ctx = _server_ctx(env, ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1)
    _old_tls(env, ctx, r"TLS handshake failed|protocol version|"
             r"no protocols available|unsupported protocol")


def test_m8_null_ciphers_only(env):
    """M8: TLS 1.2 but only NULL (unencrypted) cipher suites: refused."""
    ctx = _server_ctx(env, ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_2,
                      "eNULL:@SECLEVEL=0")
    _old_tls(env, ctx, r"TLS handshake failed|handshake failure|"
             r"no shared cipher")


# --------------------------------------------------------------------------
# M9: no fallback from implicit TLS


def test_m9_implicit_port_speaks_plaintext_no_fallback(env):
    """M9: tls=implicit, but the port answers with a cleartext greeting
    offering STLS: hauld fails the handshake and never falls back to
    cleartext or STLS (no POP3 command at all reaches the server)."""
    with Case(env, tls="starttls") as c:
        c.h.update("fake", tls="implicit")
        refused(c, r"TLS|handshake|wrong version|packet length|record")
        verbs = {"CAPA", "STLS", "USER", "PASS", "AUTH", "APOP", "QUIT"}
        assert not [v for v in c.srv.commands() if v in verbs], \
            c.srv.dump()
        assert not c.srv.lines("STLS") and not c.srv.lines("USER")
        assert c.srv.connections == 1, "reconnected (fallback?)"


def test_m9_implicit_port_closed_no_fallback(env):
    """M9: the implicit-TLS port is closed while a STLS server listens on
    another port: hauld fails the connection, never tries elsewhere."""
    with Case(env, tls="starttls") as c:
        c.h.update("fake", tls="implicit", port=free_port())
        r = c.run(rcs=(1,))
        assert r.grep(r"connect|refused"), r.tail()
        assert c.srv.connections == 0, "fell back to the STLS port"
        assert c.sink.dumps() == []
        assert_all_on_server(c)


# --------------------------------------------------------------------------
# M17 / M40: endless and huge listings


def test_m17_endless_uidl_stops_at_stat_count(env):
    """M17: UIDL never ends (10^7 lines, no "."): hauld stops at the line
    after STAT's count, at once (not by a timeout); nothing fetched."""
    with Case(env, endless_listing="UIDL") as c:
        r = refused(c, r"uidl|listing|expected", creds=True)
        assert r.elapsed < 5, "took %.1fs: listing cap not enforced" % \
            r.elapsed


def test_m17_stat_count_over_cap_refused(env):
    """M17: STAT claims 5 * 10^6 messages (over the 10^6 default cap):
    refused before any listing is read."""
    with Case(env, garbage={"at": "STAT", "mode": "instead",
                            "data": b"+OK 5000000 999999999\r\n"}) as c:
        r = refused(c, r"limit", creds=True)
        assert r.elapsed < 5


def _run_measured(h, timeout=60):
    """hauld -1 like Hauld.run, plus the child's peak RSS (KiB) from
    wait4(): (Run, maxrss_kib)."""
    h.write()
    argv = [h.binary, "-1", "-c", h.conf]
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=err, start_new_session=True)
        end = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > end:
                os.killpg(p.pid, 9)
                pid, status, ru = os.wait4(p.pid, 0)
                break
            time.sleep(0.05)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        out.seek(0)
        r = Run(argv, p.returncode, err.read().decode("utf-8", "replace"),
                out.read().decode("utf-8", "replace"),
                time.monotonic() - t0, time.monotonic() > end, timeout)
    h.runs.append(r)
    return r, ru.ru_maxrss


@timeout(90)
def test_m40_million_line_uidl_bounded_memory(env):
    """M40/M17: STAT says 10^6 messages (the default cap) and UIDL sends
    2 * 10^6 lines without an end: hauld keeps 10^6 entries, stops at
    line 10^6 + 1, and its peak RSS stays under 150 MB (the plan's
    budget)."""
    n = 1000000
    with Case(env, endless_listing={"verb": "UIDL", "lines": 2 * n},
              garbage={"at": "STAT", "mode": "instead",
                       "data": b"+OK %d %d\r\n" % (n, n * 1000)}) as c:
        c.h.update("fake", timeout=30)
        r, rss = _run_measured(c.h)
        c.runs.append(r)
        check_invariants(c, r, (1,))
        assert r.grep(r"uidl|listing|expected"), r.tail()
        env.log("peak RSS %d KiB after %.1fs\n%s" % (rss, r.elapsed,
                                                      r.tail(8)))
        # ASan's shadow memory and quarantine multiply RSS (make asan)
        with open(env.hauld, "rb") as f:
            budget = 600 if b"__asan_init" in f.read() else 150
        assert rss < budget * 1024, "peak RSS %d KiB (budget %d MB)" % (
            rss, budget)
        assert not c.srv.lines("RETR") and c.srv.dele_count() == 0
        assert_all_on_server(c)


# --------------------------------------------------------------------------
# M22: SASL continuations from a scripted server (implicit TLS)


GREET = "+OK fake POP3 ready"
CAPA = b"+OK\r\nUIDL\r\nSASL PLAIN LOGIN\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n"


def _sasl_script(env, steps, auth, reason):
    script = [("send", GREET), ("expect", r"CAPA"), ("send", CAPA)] + steps
    with Case(env, script=script, account={"auth": auth}) as c:
        r = c.run(rcs=(1,))
        assert r.grep(reason), "log does not name %r:\n%s" % (reason,
                                                              r.tail())
        assert c.sink.dumps() == []
        assert not c.srv.script_errors, c.srv.script_errors
        return c, r


def test_m22_sasl_continuation_after_final_response(env):
    """M22 (CVE-2025-61962 class): AUTH PLAIN with the initial response,
    then the server sends "+" anyway (wrong state): hauld does not send
    its credentials again and aborts."""
    c, r = _sasl_script(env, [("expect", r"AUTH PLAIN \S+"),
                              ("send", "+ "), ("drain",)],
                        "plain", r"challenge|unexpected|SASL|protocol")
    auth = [ln for ln in c.srv.transcript if ln.raw.upper()
            .startswith(b"AUTH")]
    assert len(auth) == 1, c.srv.dump()
    sasl = [ln for ln in c.srv.transcript if ln.kind != "cmd" or
            base64.b64encode(("\0%s\0%s" % (USER, PW)).encode()) in ln.raw]
    assert len(sasl) <= 1, "credentials sent twice:\n" + c.srv.dump()


def test_m22_sasl_invalid_base64_challenge(env):
    """M22: AUTH LOGIN, the challenge is not base64: protocol error, the
    password is never sent."""
    c, r = _sasl_script(env, [("expect", r"AUTH LOGIN"),
                              ("send", "+ !!not*base64!!"), ("drain",)],
                        "login", r"invalid SASL challenge|challenge")
    assert not c.srv.saw_before_tls(base64.b64encode(PW.encode()))
    assert not any(base64.b64encode(PW.encode()) in ln.raw
                   for ln in c.srv.transcript), c.srv.dump()


def test_m22_sasl_huge_challenge(env):
    """M22: a 1 MiB challenge line: the line cap stops it at once."""
    big = "+ " + base64.b64encode(b"x" * (768 * 1024)).decode()
    c, r = _sasl_script(env, [("expect", r"AUTH LOGIN"), ("send", big),
                              ("drain",)],
                        "login", r"longer than|too long|line")
    assert r.elapsed < 5, "took %.1fs" % r.elapsed
    assert not any(base64.b64encode(PW.encode()) in ln.raw
                   for ln in c.srv.transcript), c.srv.dump()


# --------------------------------------------------------------------------
# M27: a UID reused with different content


def test_m27_uid_reused_with_different_content(env):
    """M27: after run 1 (keep=yes) the server replaces message 2 by a
    different message under the same UID (POP3 has no UIDVALIDITY).
    haul identifies messages by UID only: the new content is not fetched
    (logged nowhere); this documents that behaviour (docs/security.md).
    Nothing is deleted either way."""
    msgs = sample_messages(3, 700)
    uids = ["uid-a", "uid-b", "uid-c"]
    with Case(env, messages=msgs, uids=uids, keep=True) as c:
        c.run(rcs=(0,))
        assert sorted(c.got()) == sorted(c.ids())
        other = sample_message(77, 900)
        c.srv.stop()
        c.srv = FakePOP3([msgs[0], other, msgs[2]], uids=uids,
                         users={USER: PW}, tls="implicit",
                         certfile=env.pki.server_cert,
                         keyfile=env.pki.server_key)
        c.servers.append(c.srv)
        c.h.update("fake", port=c.srv.port)
        r2 = c.run(rcs=(0,))
        assert r2.delivered_uids() == [], r2.delivered_uids()
        assert c.srv.dele_count() == 0
        env.log("reused UID: %s" % ("re-fetched" if message_ids([other])[0]
                                    in c.got() else "not fetched"))
        assert message_ids([other])[0] not in c.got()


# --------------------------------------------------------------------------
# M34: response codes at login


def _code(env, code, cls):
    with Case(env, auth_fail_code=code) as c:
        r = refused(c, r"IN-USE|SYS|LOGIN-DELAY|AUTH|error", creds=True)
        if cls == "auth":
            assert r.grep(r"refused the credentials"), r.tail()
        else:
            assert not r.grep(r"refused the credentials"), r.tail()
            assert r.grep(r"temporary error"), r.tail()
        return r


def test_m34_sys_temp_is_temporary(env):
    """M34: -ERR [SYS/TEMP] at login: a temporary error, no credential
    alert (no account-lock storm)."""
    _code(env, "[SYS/TEMP]", "temp")


def test_m34_login_delay_code_is_temporary(env):
    """M34: -ERR [LOGIN-DELAY] at login: temporary."""
    _code(env, "[LOGIN-DELAY]", "temp")


def test_m34_in_use_is_temporary(env):
    """M34: -ERR [IN-USE]: temporary."""
    _code(env, "[IN-USE]", "temp")


def test_m34_auth_is_the_credential_failure(env):
    """M34: -ERR [AUTH]: the one code that raises the credential alert."""
    _code(env, "[AUTH]", "auth")


def test_m34_login_delay_capability_delays_next_poll(env):
    """M34: CAPA LOGIN-DELAY 900 (advertised): hauld logs in once and
    accepts it; the session succeeds and is not counted as an error."""
    with Case(env, login_delay=900) as c:
        r = c.run(rcs=(0,))
        assert sorted(c.got()) == sorted(c.ids())
        assert r.session()["error"] is None
        assert c.srv.connections == 1


# --------------------------------------------------------------------------
# M35: EXPIRE 0 with keep=yes


def test_m35_expire_zero_with_keep_warns(env):
    """M35: keep=yes against a server announcing EXPIRE 0 (it deletes what
    is retrieved, whatever the client does): hauld warns, never sends DELE,
    and every message it let the server delete was delivered first (I1)."""
    with Case(env, keep=True, expire=0) as c:
        r = c.run(rcs=(0,))
        assert r.grep(r"EXPIRE 0"), r.tail()
        assert [x for x in r.lines(level="warning")
                if "EXPIRE 0" in x["msg"]], r.tail()
        assert c.srv.dele_count() == 0, "DELE despite keep=yes"
        assert sorted(c.got()) == sorted(c.ids())
        gone = set(c.srv.expunged_uids())
        assert gone <= set(r.delivered_uids())


# --------------------------------------------------------------------------
# M38: slowloris


@timeout(60)
def test_m38_slow_greeting_deadline_other_account_fine(env):
    """M38: the greeting trickles at 1 byte per 0.5 s (would take ~15 s):
    the progress deadline (timeout = 5 s) ends the session; the healthy
    account in the same run is fetched in full (fairness, I6)."""
    with Case(env, slow={"greeting": 0.5}) as c:
        good, gmsgs = c.good_account()
        r = c.run(rcs=(1,))
        assert r.elapsed < 12, "took %.1fs" % r.elapsed
        assert r.grep(r"deadline|timed out|timeout"), r.tail()
        assert sorted(c.got()) == sorted(message_ids(gmsgs))
        assert good.remaining() == []
        assert not c.srv.lines("USER") and not c.srv.lines("AUTH")
        assert_all_on_server(c)


@timeout(60)
def test_m38_slow_body_is_not_delivered(env):
    """M38: RETR bodies trickle at 20 bytes/s: the per-operation progress
    floor aborts the session within ~timeout; nothing partial is delivered,
    nothing deleted; a later normal run delivers all."""
    with Case(env, slow={"RETR": 0.05}) as c:
        r = c.run(rcs=(1,))
        assert r.elapsed < 15, "took %.1fs" % r.elapsed
        assert r.grep(r"deadline|timed out|timeout"), r.tail()
        assert c.sink.dumps() == [] and c.srv.dele_count() == 0
        assert_all_on_server(c)
        recovers(c)


# --------------------------------------------------------------------------
# M42: a cleartext-only server


def test_m42_cleartext_only_server_refused(env):
    """M42: the server has no TLS and offers USER, SASL PLAIN and LOGIN in
    the clear; the account wants TLS (starttls): refused before any
    credential (not even USER)."""
    with Case(env, tls=None, capabilities=["UIDL", "USER", "SASL PLAIN LOGIN",
                                           "RESP-CODES"]) as c:
        c.h.update("fake", tls="starttls", ca_file=env.pki.ca_file)
        del c.h.accounts["fake"]["allow_plaintext"]
        refused(c, r"STLS|STARTTLS|TLS")
        assert not c.srv.lines("USER"), c.srv.dump()
        assert not c.srv.saw_before_tls(PW.encode())


def test_m42_tls_none_without_opt_in_is_a_config_error(env):
    """M42: tls = none needs allow_plaintext = yes; without it hauld -1
    refuses to start (nothing connects to the server)."""
    with Case(env, tls=None) as c:
        del c.h.accounts["fake"]["allow_plaintext"]
        r = c.h.run()
        assert r.rc != 0 and r.grep(r"allow_plaintext"), r.tail()
        assert c.srv.connections == 0
        assert PW not in r.log


# --------------------------------------------------------------------------
# M43: APOP


def _apop(env, greeting, reason):
    with Case(env, greeting=greeting, apop=True,
              account={"auth": "apop"}) as c:
        r = refused(c, reason)
        assert not c.srv.lines("APOP") and not c.srv.lines("USER")
        return r


def test_m43_apop_timestamp_unterminated(env):
    """M43 (CVE-2007-1558): APOP configured, the greeting's timestamp has
    no closing ">": refused, no APOP sent."""
    _apop(env, "+OK ready <1234.5678@fake.test", r"APOP")


def test_m43_apop_timestamp_with_control_bytes(env):
    """M43: a timestamp without "@" and with a control byte."""
    _apop(env, b"+OK ready <12\x01\x7f34>\r\n", r"APOP")


def test_m43_apop_timestamp_missing(env):
    """M43: APOP configured, no timestamp at all: refused (no fallback to
    another mechanism)."""
    _apop(env, "+OK ready", r"APOP")


# --------------------------------------------------------------------------
# I5: the secrets_in_logs check (run.py) would catch a leak


def test_secrets_check_catches_a_leak(env):
    """Negative self-test of run.py's final secrets_in_logs check: a
    registered secret leaked in any of its forms (as is, base64, SASL
    PLAIN) into a hauld run's output or into a *.log file is reported;
    a clean log is not."""
    import hauldrun
    sec = "Leak-test-pw-Q81zT"
    user = "leaky"
    forms = hauldrun.secret_forms_all(sec, [user])
    assert len(forms) == 4, forms
    reg = {sec: {user}}
    for form in forms:
        hits = hauldrun.secret_hits(reg, [("run", "x %s y" % form)], ())
        assert hits, "form %r not caught" % form
    assert hauldrun.secret_hits(reg, [("run", "clean log")], ()) == []
    # through the global registry and a log file, as run.py scans them
    path = os.path.join(env.tmpdir, "leak-selftest.txt")
    with open(path, "w") as f:
        f.write("hauld: debug: C: AUTH PLAIN %s\n" % base64.b64encode(
            ("\0%s\0%s" % (user, sec)).encode()).decode())
    hauldrun.register_secret(sec, user)
    try:
        hits = hauldrun.secret_hits(files=[path])
        assert [h for h in hits if h[0] == path], hits
    finally:
        del hauldrun.SECRETS[sec]
    assert not [h for h in hauldrun.secret_hits(files=[path])
                if h[0] == path]
