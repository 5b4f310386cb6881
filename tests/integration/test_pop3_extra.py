# ISC License; see LICENSE.
"""POP3 odds and ends against real components: the SHA-256 certificate
pin, password_command, and XCLIENT telling Postfix the message's true
origin (from the provider's Received: hop)."""

import os

import haulfix
from haulfix import timeout
from hauldrun import Hauld

TIMEOUT = 90

ORIGIN = ("Received: from sender.example.org (sender.example.org "
          "[198.51.100.20])\r\n\tby mx.provider.test (Postfix) with ESMTPS "
          "id 4Zz; Sun, 22 Nov 2026 00:00:00 +0000\r\n")


def setup_module(env):
    haulfix.need_root()
    env.dovecot = haulfix.Dovecot()
    env.dovecot.start()
    env.postfix = haulfix.Postfix(
        capture=("fetched@capture.test",),
        main_extra={"smtpd_authorized_xclient_hosts": "127.0.0.0/8"})
    env.postfix.start()


def teardown_module(env):
    for f in (getattr(env, "dovecot", None), getattr(env, "postfix", None)):
        if f:
            f.close()


def _hauld(env, user, **opts):
    d = env.dovecot
    h = Hauld(env.need("hauld"), env.tmpdir)
    h.smtp(env.postfix.plain_port)
    acct = dict(host="localhost", port=d.pop3s_port, tls="implicit",
                ca_file=d.ca_file, user=user, keep=True,
                deliver_to=["fetched@capture.test"])
    acct.update(opts)
    return h, acct


@timeout(60)
def test_fingerprint_pin_matches(env):
    d = env.dovecot
    d.seed_n("bob", 2, 1500)
    h, acct = _hauld(env, "bob",
                     fingerprint=d.pki.fingerprint("server").replace(":", ""))
    h.account("pin", password=d.users["bob"], **acct)
    r = h.run()
    r.check(h)
    assert r.rc == 0, r.tail()
    assert len(r.delivered_uids()) == 2


@timeout(60)
def test_fingerprint_pin_mismatch_refuses_before_login(env):
    d = env.dovecot
    h, acct = _hauld(env, "carol", fingerprint="ab" * 32)
    h.account("badpin", password=d.users["carol"], **acct)
    r = h.run()
    r.check(h)
    assert r.rc == 1
    assert r.grep(r"fingerprint [0-9a-f]{64} does not match")
    assert r.delivered_uids() == []
    assert "user=<carol>" not in "".join(d.logs()), \
        "no login may follow a pin mismatch"


@timeout(60)
def test_password_command(env):
    d = env.dovecot
    d.seed_n("dave", 3, 1200)
    script = os.path.join(env.tmpdir, "secret.sh")
    with open(script, "w") as f:
        f.write("#!/bin/sh\nprintf '%s\\n' '" + d.users["dave"] + "'\n")
    os.chmod(script, 0o700)
    h, acct = _hauld(env, "dave", password_command=[script])
    h.account("cmd", **acct)
    h.secrets.add(d.users["dave"])
    r = h.run()
    r.check(h)
    assert r.rc == 0, r.tail()
    assert len(r.delivered_uids()) == 3


@timeout(60)
def test_password_command_failure_is_an_error(env):
    d = env.dovecot
    h, acct = _hauld(env, "dave", password_command=["/bin/false"])
    h.account("cmdfail", **acct)
    r = h.run()
    r.check(h)
    assert r.rc == 1
    assert r.grep("password_command /bin/false failed")


@timeout(60)
def test_xclient_announces_the_true_origin(env):
    d = env.dovecot
    p = env.postfix
    p.clear_captured()
    msg = (ORIGIN + "From: a@example.org\r\nTo: erin@example.net\r\n"
           "Subject: origin\r\nMessage-ID: <origin-1@example.org>\r\n\r\n"
           "hello\r\n").encode()
    d.seed("erin", [msg])
    # A local (virtual) recipient: once XCLIENT names an outside client,
    # Postfix applies its relay rules to it, as it would to the sender.
    h, acct = _hauld(env, "erin", xclient=True,
                     deliver_to=["carol@local.test"])
    h.account("xc", password=d.users["erin"], **acct)
    r = h.run()
    r.check(h)
    assert r.rc == 0, r.tail()
    p.wait_maildir("carol", 1)
    got = [m for m in p.maildir_messages("carol")
           if b"<origin-1@example.org>" in m]
    assert got, "not delivered"
    top = got[0].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    assert b"from sender.example.org (sender.example.org " \
        b"[198.51.100.20])" in top, top[:600]
