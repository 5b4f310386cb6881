# ISC License; see LICENSE.
"""max_tls_handshakes: hauld keeps at most that many TLS handshakes in
progress, over implicit TLS and STARTTLS alike, and every account still
gets through even when the queue takes longer than connect_timeout.

The fake servers stretch each handshake: their SNI callback (run while the
server handles the ClientHello, i.e. inside the client's handshake) sleeps
HOLD seconds and counts how many callbacks overlap.  hauld's handshake
spans the callback, so the overlap is a lower bound of hauld's handshakes
in flight: with the cap it must never exceed the cap, and without it the
same run must exceed it (otherwise the test could not fail).
"""

import os
import ssl
import threading
import time

import fakepki
import haulfix
from fakeimap import FakeIMAP
from haulfix import timeout
from hauldrun import Hauld, SmtpSink
from imaprun import imap_account

PW = "Tg-pw-5Rm8xQ2w"
HOLD = 0.25             # seconds each server handshake is held
N_IMPLICIT = 6
N_STARTTLS = 6


class Overlap:
    """An SSL server context whose handshakes take HOLD s and are
    counted: peak = most handshakes in the callback at once."""

    def __init__(self, pki):
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.total = 0
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(pki.cert, pki.key)
        self.ctx.sni_callback = self._sni

    def _sni(self, sock, name, ctx):
        with self.lock:
            self.now += 1
            self.total += 1
            self.peak = max(self.peak, self.now)
        time.sleep(HOLD)
        with self.lock:
            self.now -= 1
        return None


def setup_module(env):
    haulfix.need_root()
    haulfix.need_binaries("smtp-sink", "openssl")
    env.need("hauld")
    env.pki = fakepki.make_pki(os.path.join(env.tmpdir, "pki"))


def _run(env, name, limit):
    """hauld -1 over N_IMPLICIT + N_STARTTLS accounts (one user each,
    empty INBOX) with max_tls_handshakes = limit: (run, overlap, servers)."""
    ov = Overlap(env.pki)
    users = {"u%d" % i: PW for i in range(N_IMPLICIT + N_STARTTLS)}
    imp = FakeIMAP([], users=users, tls="implicit", ssl_context=ov.ctx)
    stls = FakeIMAP([], users=users, tls="starttls", ssl_context=ov.ctx)
    sink = SmtpSink(os.path.join(env.tmpdir, name + "-sink")).start()
    try:
        h = Hauld(env.hauld, os.path.join(env.tmpdir, name))
        h.global_opts["max_tls_handshakes"] = limit
        h.global_opts["max_connections_per_host"] = 100
        h.smtp(sink.port)
        for i in range(N_IMPLICIT + N_STARTTLS):
            srv = imp if i < N_IMPLICIT else stls
            # connect_timeout 1 s: shorter than the queue at the cap
            # (6 rounds of HOLD), longer than one handshake.
            imap_account(h, "a%d" % i, PW, host="localhost", port=srv.port,
                         user="u%d" % i, tls=srv.tls_mode,
                         ca_file=env.pki.ca_cert, keep=True,
                         connect_timeout=1, timeout=10,
                         deliver_to=["rcpt@local.test"])
        r = h.run(timeout=30)
        r.check(h, rcs=(0,))
        for srv in (imp, stls):
            assert not srv.errors, srv.errors
            assert not srv.tls_errors, srv.tls_errors
            assert not srv.saw_credentials_before_tls(), srv.dump()
        logged_in = sorted(u for srv in (imp, stls) for s in srv.sessions
                           if s.tls and s.user for u in [s.user])
        assert logged_in == sorted(users), \
            "accounts that logged in over TLS: %s\n%s" % (logged_in, r.tail())
        return r, ov
    finally:
        sink.stop()
        imp.stop()
        stls.stop()


@timeout(60)
def test_at_most_limit_handshakes_and_all_connect(env):
    n = N_IMPLICIT + N_STARTTLS
    # The control: with room for all, the handshakes do overlap.
    r, ov = _run(env, "open", n)
    assert ov.total == n, ov.total
    assert ov.peak > 2, "without the cap only %d handshakes overlapped: " \
        "the test could not see the cap" % ov.peak
    assert not r.grep("waiting for a TLS handshake slot")
    # The cap: never more than two at once, and all accounts still get
    # through although the queue (n/2 * HOLD) outlasts connect_timeout.
    t0 = time.monotonic()
    r, ov = _run(env, "capped", 2)
    took = time.monotonic() - t0
    assert ov.total == n, ov.total
    assert ov.peak == 2, "peak of %d handshakes with " \
        "max_tls_handshakes = 2" % ov.peak
    assert len(r.grep("waiting for a TLS handshake slot")) >= n - 2 - 2, \
        r.tail()
    assert took >= (n / 2) * HOLD, took
    assert not r.grep("deadline passed"), r.tail()
