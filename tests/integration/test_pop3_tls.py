# ISC License; see LICENSE.
"""hauld's POP3 TLS: bad certificates (the private Dovecot's bad-cert
addresses and fakepop3 presenting haulfix's bad certs for "localhost") and
STARTTLS downgrade/injection cases (reliability.md 4.2 M1, M2, M4, M6, M7).

Every case must refuse before any credential is sent: no PASS/AUTH/APOP
(nor USER) reaches the server in the clear (fakepop3's transcript; for
Dovecot its log shows no login and no user name), nothing is delivered,
hauld exits 1 and its log names the reason.  The positive controls show
the same setups succeed with a good certificate.
"""

import os
import re
import time

import haulfix
from haulfix import Dovecot, timeout
from hauldrun import Hauld, SmtpSink, message_ids
from fakepop3 import FakePOP3, sample_messages

TIMEOUT = 60
SETUP_TIMEOUT = 60

USER = "tlsuser"
PW = "Tls-pw-Wq73nXc5"
FAKE_USER = "fetcher"
FAKE_PW = "Fk-tls-pw-8Hd2mQ"


def setup_module(env):
    haulfix.need_root()
    haulfix.need_binaries("dovecot", "openssl", "smtp-sink")
    env.need("hauld")
    env.dovecot = Dovecot(users={USER: PW})
    env.pki = env.dovecot.pki
    env.dovecot.start()
    env.dovecot.seed_n(USER, 3, size=1500)


def teardown_module(env):
    f = getattr(env, "dovecot", None)
    if f is not None:
        f.close()


# --------------------------------------------------------------------------
# helpers


class Setup:
    """A sink (any delivery shows up in it) and a hauld config."""

    def __init__(self, env):
        self.env = env
        self.sink = SmtpSink(os.path.join(env.tmpdir, "sink")).start()
        self.h = Hauld(env.hauld, os.path.join(env.tmpdir, "hauld"))
        self.h.smtp(self.sink.port)
        self.srv = None

    def fake(self, cert="server", tls="starttls", n=3, **faults):
        c, k = self.env.pki.pair(cert)
        self.n = n
        self.srv = FakePOP3(sample_messages(n, 600),
                            users={FAKE_USER: FAKE_PW}, tls=tls,
                            certfile=c, keyfile=k, **faults)
        self.h.account("fake", password=FAKE_PW, host="localhost",
                       port=self.srv.port, user=FAKE_USER,
                       tls="implicit" if tls == "implicit" else "starttls",
                       ca_file=self.env.pki.ca_file, keep=False,
                       deliver_to=["rcpt@local.test"], timeout=10)
        return self.srv

    def dovecot(self, host, tls="implicit"):
        d = self.env.dovecot
        self.h.account("dove", password=PW, host=host,
                       port=d.pop3s_port if tls == "implicit" else d.pop3_port,
                       tls=tls, ca_file=d.ca_file, user=USER, keep=True,
                       deliver_to=["rcpt@local.test"], timeout=10)

    def close(self):
        self.sink.stop()
        if self.srv is not None:
            self.srv.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def refused(s, reason, rc=1, timeout=20):
    """Run hauld once; it must fail (exit 1) naming reason (regex), deliver
    nothing and, against fakepop3, send no credential (nor USER) in the
    clear and none at all unless TLS was up."""
    r = s.h.run(timeout=timeout)
    r.check(s.h, rcs=(rc,))
    assert r.grep(reason), "log does not name %r:\n%s" % (reason, r.tail())
    assert not r.delivered_uids(), r.delivered_uids()
    assert s.sink.dumps() == [], "a message was delivered"
    if s.srv is not None:
        srv = s.srv
        assert not srv.saw_credentials_before_tls(), \
            "credentials before TLS:\n" + srv.dump()
        user_lines = [ln for ln in srv.lines("USER") if not ln.tls]
        assert not user_lines, "USER sent in the clear:\n" + srv.dump()
        assert not srv.saw_before_tls(FAKE_PW), srv.dump()
        assert not srv.lines("RETR"), srv.dump()
        assert len(srv.remaining()) == s.n, "mail lost"
        assert not srv.errors, srv.errors
    return r


def dovecot_log_since(d, offset, lip, wait=5):
    """Dovecot log text after offset, once a line for local IP lip (the
    login process's disconnect line) is there."""
    end = time.monotonic() + wait
    while True:
        with open(d.log_file, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        if "lip=%s" % lip in text or time.monotonic() > end:
            return text
        time.sleep(0.05)


def dovecot_refused(env, host, reason, tls="implicit"):
    d = env.dovecot
    with Setup(env) as s:
        s.dovecot(host, tls)
        off = os.path.getsize(d.log_file)
        r = refused(s, reason)
        text = dovecot_log_since(d, off, host)
        assert "lip=%s" % host in text, \
            "no Dovecot line for the connection:\n" + text
        assert "Login:" not in text and "user=<%s>" % USER not in text, \
            "Dovecot saw a login attempt:\n" + text
        assert "auth failed" not in text, text
        assert d.count(USER) == 3
        return r


# --------------------------------------------------------------------------
# Dovecot's bad-cert addresses (same ports, hauld connects by IP)


def test_dovecot_wrong_host_cert(env):
    """127.0.0.3 serves a CA-signed cert for wrong.example (hauld checks
    the IP it was given: an IP address mismatch)."""
    dovecot_refused(env, env.dovecot.tls_hosts["wrong_host"],
                    r"certificate verification failed.*"
                    r"(hostname|IP address) mismatch")


def test_dovecot_unknown_ca_cert(env):
    """127.0.0.4 serves a cert from a CA hauld does not trust."""
    dovecot_refused(env, env.dovecot.tls_hosts["unknown_ca"],
                    r"certificate verification failed")


def test_dovecot_expired_cert(env):
    """127.0.0.5 serves an expired cert (January 2020)."""
    dovecot_refused(env, env.dovecot.tls_hosts["expired"],
                    r"certificate verification failed")


def test_dovecot_stls_wrong_host_cert(env):
    """STLS on 127.0.0.3: the upgrade's certificate fails; no login."""
    dovecot_refused(env, env.dovecot.tls_hosts["wrong_host"],
                    r"certificate verification failed", tls="starttls")


def test_dovecot_good_cert_control(env):
    """Positive control: the same Dovecot by name "localhost" works."""
    with Setup(env) as s:
        s.dovecot("localhost")
        r = s.h.run()
        r.check(s.h, rcs=(0,))
        assert len(r.delivered_uids()) == 3
        assert len(s.sink.dumps()) == 3


# --------------------------------------------------------------------------
# fakepop3 presenting haulfix's bad certs for localhost / 127.0.0.1: only
# the one defect differs from a good cert, so the reason is specific


def test_fake_wrong_host_cert(env):
    with Setup(env) as s:
        s.fake("wrong_host", tls="implicit")
        refused(s, r"certificate verification failed.*hostname mismatch")
        assert not s.srv.lines(), "commands sent over a bad TLS session"


def test_fake_unknown_ca_cert(env):
    with Setup(env) as s:
        s.fake("unknown_ca", tls="implicit")
        refused(s, r"certificate verification failed.*(local issuer|"
                r"self.signed|unknown ca)")
        assert not s.srv.lines(), "commands sent over a bad TLS session"


def test_fake_expired_cert(env):
    with Setup(env) as s:
        s.fake("expired", tls="implicit")
        refused(s, r"certificate verification failed.*expired")
        assert not s.srv.lines(), "commands sent over a bad TLS session"


def test_fake_stls_expired_cert(env):
    """The STLS upgrade presents an expired cert: nothing after STLS."""
    with Setup(env) as s:
        srv = s.fake("expired", tls="starttls")
        refused(s, r"certificate verification failed.*expired")
        after = srv.commands()
        assert "STLS" in after
        assert after[after.index("STLS") + 1:] == [], srv.dump()


# --------------------------------------------------------------------------
# STARTTLS downgrade and injection (fakepop3, tls = starttls)


def test_stls_missing(env):
    """M1: STLS not offered (a stripping MITM): abort before any
    credential, although the server would take a plaintext login."""
    with Setup(env) as s:
        s.fake(no_stls=True)
        refused(s, r"STLS")
        assert not s.srv.lines("PASS") and not s.srv.lines("AUTH")


def test_stls_refused(env):
    """M2: STLS answered -ERR: abort."""
    with Setup(env) as s:
        s.fake(stls_err="TLS not available right now")
        refused(s, r"STLS")
        assert "STLS" in s.srv.commands()


def test_stls_injected_bytes(env):
    """M4: bytes after the STLS +OK in the same segment (an injected
    login reply): abort; no credential is ever sent, not even under
    TLS, and the injected reply is not taken for the server's."""
    with Setup(env) as s:
        s.fake(inject_after_stls=b"+OK Logged in.\r\n+OK 3 1800\r\n")
        refused(s, r"inject|between the STARTTLS reply and the handshake")
        assert not s.srv.lines("PASS") and not s.srv.lines("AUTH") and \
            not s.srv.lines(kinds=("sasl",)), s.srv.dump()


@timeout(45)
def test_stls_acked_then_silent(env):
    """M6: STLS acknowledged, then no handshake: hauld gives up by its
    deadline (connect_timeout 3 s, timeout 5 s) without credentials."""
    with Setup(env) as s:
        s.fake(hang_after="STLS")
        s.h.update("fake", connect_timeout=3, timeout=5)
        r = refused(s, r"timed out|timeout", timeout=30)
        assert r.elapsed < 20, "took %.1fs" % r.elapsed


def test_stls_capabilities_requeried_after_tls(env):
    """M5: before TLS the server offers only SASL PLAIN, after TLS only
    SASL LOGIN: hauld must discard the pre-TLS list, send CAPA again
    under TLS and authenticate with LOGIN."""
    caps = {"pre_tls": ["TOP", "UIDL", "RESP-CODES", "PIPELINING",
                        "SASL PLAIN", "STLS"],
            "post_tls": ["TOP", "UIDL", "RESP-CODES", "PIPELINING",
                         "SASL LOGIN"]}
    with Setup(env) as s:
        srv = s.fake(capabilities=caps)
        r = s.h.run()
        r.check(s.h, rcs=(0,))
        tls_cmds = [ln.verb for ln in srv.lines() if ln.tls]
        assert tls_cmds[:1] == ["CAPA"], \
            "first command under TLS is not CAPA: %s" % tls_cmds[:3]
        auth = [ln.text for ln in srv.lines("AUTH")]
        assert auth and all(a.upper().startswith("AUTH LOGIN") for a in
                            auth), "used a pre-TLS mechanism: %s" % auth
        assert len(s.sink.dumps()) == 3


def test_stls_good_control(env):
    """Positive control: STLS with a good cert delivers, and credentials
    travel only under TLS."""
    with Setup(env) as s:
        srv = s.fake()
        r = s.h.run()
        r.check(s.h, rcs=(0,))
        assert sorted(message_ids(s.sink.dumps())) == sorted(
            message_ids(sample_messages(3, 600)))
        creds = srv.lines("PASS") + srv.lines("AUTH") + \
            srv.lines(kinds=("sasl",))
        assert creds and all(ln.tls for ln in creds), srv.dump()
        assert not srv.saw_credentials_before_tls()
        assert srv.remaining() == []


# --------------------------------------------------------------------------
# configuration


def test_tls_none_needs_allow_plaintext(env):
    """tls = none without allow_plaintext is a configuration error for
    `hauld -n`; with allow_plaintext = yes it is accepted."""
    h = Hauld(env.hauld, env.tmpdir)
    h.smtp(25)
    h.account("plain", password=PW, host="localhost", port=110, tls="none",
              user=USER, keep=True, deliver_to=["rcpt@local.test"])
    rc, out = h.check_config()
    assert rc != 0, "tls = none without allow_plaintext accepted:\n" + out
    assert re.search(r"allow_plaintext", out), out
    assert PW not in out
    h.update("plain", allow_plaintext=True)
    rc, out = h.check_config()
    assert rc == 0, out
    assert "configuration OK" in out
