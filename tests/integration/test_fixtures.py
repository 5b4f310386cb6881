"""Proves the test fixtures (tests/fixtures/haulfix.py) against the real
Dovecot and Postfix: TLS verification, STARTTLS, plaintext refusal,
seeding, delivery routes, the fetch.invalid fail-safe, the tempfailing fetch
listener, clean shutdown, stale-run cleanup and the CLI."""

import email
import email.policy
import imaplib
import json
import os
import poplib
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time

import haulfix
from haulfix import Dovecot, Postfix, make_message

TIMEOUT = 60
HAULFIX = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "fixtures", "haulfix.py")


def setup_module(env):
    haulfix.need_root()
    haulfix.need_binaries("dovecot", "postfix", "postconf", "openssl")
    env.pki = haulfix.make_pki(os.path.join(env.tmpdir, "pki"))
    env.dovecot = Dovecot(pki=env.pki)
    env.postfix = Postfix(capture=["carol@local.test"])
    env.dovecot.start()
    env.postfix.start()


def teardown_module(env):
    masters = []
    for name in ("dovecot", "postfix"):
        f = getattr(env, name, None)
        if f is None:
            continue
        if f.pid:
            masters.append((name, f.pid, f.dir))
        f.close()
    for name, pid, d in masters:
        assert not haulfix._alive(pid), "%s master %d still running" % (
            name, pid)
        assert not haulfix._group_members(pid), "%s processes left" % name
        assert not os.path.exists(d), "%s dir %s not removed" % (name, d)


def _ctx(env):
    return env.dovecot.ssl_context()


def _lf_to_crlf_size(msgs):
    # POP3 sizes count CRLF line ends; the maildir files use LF
    return sum(len(m) + m.count(b"\n") - m.count(b"\r\n") for m in msgs)


# --------------------------------------------------------------------------
# PKI

def test_pki_certificates(env):
    p = env.pki

    def verify(cert, ca=p.ca_file, host="localhost"):
        opt = "-verify_ip" if host[0].isdigit() else "-verify_hostname"
        r = subprocess.run(["openssl", "verify", "-CAfile", ca,
                            opt, host, cert],
                           capture_output=True, text=True)
        return r.returncode, r.stdout + r.stderr

    rc, out = verify(p.server_cert)
    assert rc == 0, out
    for ip in ("127.0.0.1", "127.0.0.2"):
        rc, out = verify(p.server_cert, host=ip)
        assert rc == 0, out
    rc, out = verify(p.server_cert, host="127.0.0.3")
    assert rc != 0, out
    rc, out = verify(p.wrong_host_cert)
    assert rc != 0 and "hostname mismatch" in out, out
    rc, out = verify(p.wrong_host_cert, host="wrong.example")
    assert rc == 0, out  # signed by the CA: only the name is wrong
    rc, out = verify(p.unknown_ca_cert)
    assert rc != 0 and "unable to get local issuer" in out, out
    rc, out = verify(p.unknown_ca_cert, ca=p.other_ca_file)
    assert rc == 0, out
    rc, out = verify(p.expired_cert)
    assert rc != 0 and "expired" in out, out
    assert len(p.fingerprint("server")) == 64
    for kind in p.KINDS:
        cert, key = p.pair(kind)
        assert os.path.getsize(cert) > 0 and os.path.getsize(key) > 0


# --------------------------------------------------------------------------
# Dovecot

def test_imaps_verified_login_and_seeded_count(env):
    d = env.dovecot
    d.seed_n("alice", 7, size=3000)
    c = imaplib.IMAP4_SSL("localhost", d.imaps_port, ssl_context=_ctx(env),
                          timeout=10)
    try:
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3"), c.sock.version()
        assert dict(x[0] for x in c.sock.getpeercert()["subject"])[
            "commonName"] == "localhost"
        typ, _ = c.login("alice", d.password("alice"))
        assert typ == "OK"
        typ, data = c.select("INBOX", readonly=True)
        assert typ == "OK" and data == [b"7"], data
    finally:
        c.logout()
    assert d.count("alice") == 7


def test_seed_order_is_uid_order(env):
    d = env.dovecot
    first = d._seq + 1
    d.seed_n("erin", 5, size=600)
    uv, uids = d.list_uids("erin")
    assert uv > 0 and uids == [1, 2, 3, 4, 5], (uv, uids)
    with d.imap_session("erin") as c:
        c.select("INBOX", readonly=True)
        typ, data = c.uid("FETCH", "1:*",
                          "(BODY.PEEK[HEADER.FIELDS (X-HAULFIX-SEQ)])")
        seqs = [int(re.search(rb"X-Haulfix-Seq: (\d+)", x[1]).group(1))
                for x in data if isinstance(x, tuple)]
    assert seqs == list(range(first, first + 5)), seqs


def test_pop3s_stat_uidl(env):
    d = env.dovecot
    msgs = [make_message(500 + i, size=1000 + 100 * i) for i in range(4)]
    d.seed("bob", msgs)
    c = poplib.POP3_SSL("localhost", d.pop3s_port, context=_ctx(env),
                        timeout=10)
    try:
        c.user("bob")
        c.pass_(d.password("bob"))
        count, size = c.stat()
        assert count == 4, count
        assert size == _lf_to_crlf_size(msgs), (size, _lf_to_crlf_size(msgs))
        resp, lines, _ = c.uidl()
        uidls = [l.split()[1].decode() for l in lines]
        # %08Xu%08Xv: Dovecot's X modifier prints lower-case hex
        assert all(re.fullmatch(r"[0-9a-f]{16}", u) for u in uidls), uidls
        assert [int(u[:8], 16) for u in uidls] == [1, 2, 3, 4]
        assert len({u[8:] for u in uidls}) == 1  # same UIDVALIDITY
    finally:
        c.quit()


def test_imap_starttls_verified(env):
    d = env.dovecot
    d.seed_n("carol", 2)
    c = imaplib.IMAP4("localhost", d.imap_port, timeout=10)
    try:
        assert "STARTTLS" in c.capabilities, c.capabilities
        typ, _ = c.starttls(ssl_context=_ctx(env))
        assert typ == "OK"
        assert c.sock.version() in ("TLSv1.2", "TLSv1.3")
        typ, _ = c.login("carol", d.password("carol"))
        assert typ == "OK"
        typ, data = c.select("INBOX", readonly=True)
        assert typ == "OK" and int(data[0]) >= 2
    finally:
        c.logout()


def test_pop3_stls_verified(env):
    d = env.dovecot
    d.seed_n("frank", 3)
    c = poplib.POP3("localhost", d.pop3_port, timeout=10)
    try:
        assert "STLS" in c.capa()
        c.stls(context=_ctx(env))
        c.user("frank")
        c.pass_(d.password("frank"))
        assert c.stat()[0] == 3
    finally:
        c.quit()


def test_cleartext_login_refused_before_starttls(env):
    d = env.dovecot
    # Dovecot counts peer IP == local IP (127.0.0.1 -> 127.0.0.1) as
    # "secured"; strict_host (127.0.0.2) gets source 127.0.0.1, so there
    # the plaintext rules apply as on a remote server.
    c = imaplib.IMAP4(d.strict_host, d.imap_port, timeout=10)
    try:
        assert "LOGINDISABLED" in c.capabilities, c.capabilities
        try:
            c.login("alice", d.password("alice"))
        except imaplib.IMAP4.error as e:
            assert "Plaintext authentication disallowed" in str(e), e
        else:
            raise AssertionError("cleartext LOGIN accepted")
        # ... and after STARTTLS the same login works (same port).
        c._get_capabilities()
        c.host = "localhost"  # the cert name (IP SAN has 127.0.0.2 too)
        c.starttls(ssl_context=_ctx(env))
        assert c.login("alice", d.password("alice"))[0] == "OK"
    finally:
        c.shutdown()
    p = poplib.POP3(d.strict_host, d.pop3_port, timeout=10)
    try:
        try:
            p.user("alice")
            p.pass_(d.password("alice"))
        except poplib.error_proto as e:
            assert b"Plaintext authentication disallowed" in e.args[0], e
        else:
            raise AssertionError("cleartext USER/PASS accepted")
    finally:
        p.close()


def test_bad_certificates_fail_verification(env):
    d = env.dovecot
    expect = {"wrong_host": "Hostname mismatch",
              "unknown_ca": "unable to get local issuer certificate",
              "expired": "certificate has expired"}
    for kind, addr in d.tls_hosts.items():
        for port in (d.imaps_port, d.pop3s_port):
            with socket.create_connection((addr, port), timeout=10) as s:
                try:
                    _ctx(env).wrap_socket(s, server_hostname="localhost")
                except ssl.SSLCertVerificationError as e:
                    assert expect[kind] in e.verify_message, (kind, e)
                else:
                    raise AssertionError("%s cert accepted on %s:%d"
                                         % (kind, addr, port))
    # STARTTLS on the wrong-host address fails the same way
    c = imaplib.IMAP4(d.tls_hosts["wrong_host"], d.imap_port, timeout=10)
    c.host = "localhost"
    try:
        c.starttls(ssl_context=_ctx(env))
    except ssl.SSLCertVerificationError as e:
        assert "Hostname mismatch" in e.verify_message
    else:
        raise AssertionError("wrong-host cert accepted after STARTTLS")
    finally:
        try:
            c.shutdown()
        except OSError:
            pass  # the failed handshake closed the socket


def test_dovecot_started_with_other_cert_and_stopped(env):
    with Dovecot(pki=env.pki, cert="wrong_host", users=["zoe"]) as d2:
        pid, fdir = d2.pid, d2.dir
        assert haulfix._alive(pid)
        try:
            imaplib.IMAP4_SSL("localhost", d2.imaps_port,
                              ssl_context=d2.ssl_context(), timeout=10)
        except ssl.SSLCertVerificationError as e:
            assert "Hostname mismatch" in e.verify_message
        else:
            raise AssertionError("wrong-host cert accepted")
        # CA-signed: verifies once the host name check is off
        c = imaplib.IMAP4_SSL("localhost", d2.imaps_port,
                              ssl_context=d2.ssl_context(False), timeout=10)
        c.login("zoe", d2.password("zoe"))
        c.logout()
    assert not haulfix._alive(pid) and not haulfix._group_members(pid)
    assert not os.path.exists(fdir)
    assert not os.path.exists(haulfix._reg_path(fdir))


def test_append_and_lmtp(env):
    d = env.dovecot
    uid1 = d.append("dave", "INBOX", make_message(900))
    uid2 = d.append("dave", "INBOX", make_message(901, crlf=True))
    assert uid2 == uid1 + 1, (uid1, uid2)
    uid3 = d.append("dave", "Archive/2024", make_message(902))
    assert uid3 == 1
    assert d.count("dave", "Archive/2024") == 1
    res = d.lmtp_deliver(["dave@local.test", "nosuch@local.test"],
                         make_message(903, tricky=True))
    assert res["dave@local.test"][0] == 250, res
    assert res["nosuch@local.test"][0] == 550, res
    uv, uids = d.list_uids("dave")
    assert uids == [uid1, uid2, uid2 + 1], uids
    # dot-stuffed lines arrive intact
    with d.imap_session("dave") as c:
        c.select("INBOX", readonly=True)
        typ, data = c.uid("FETCH", str(uid2 + 1), "(BODY.PEEK[TEXT])")
        body = data[0][1]
    assert body.startswith(b".leading dot line") and \
        b"\r\n.\r\n..\r\n" in body, body[:200]


# --------------------------------------------------------------------------
# Postfix

def test_capture_records_envelope(env):
    p = env.postfix
    n0 = len(p.captured())
    msg = make_message(1000, to="someone@elsewhere.test")
    refused = p.send("outside@sender.test",
                     ["someone@elsewhere.test", "other@elsewhere.test"], msg)
    assert refused == {}
    got = p.wait_captured(n0 + 1)[n0]
    assert got.sender == "outside@sender.test", got
    assert sorted(got.recipients) == ["other@elsewhere.test",
                                      "someone@elsewhere.test"], got
    assert got.client_address == "127.0.0.1", got.client_address
    assert got.header("Message-ID") == email.message_from_bytes(msg)[
        "Message-ID"]
    assert msg.split(b"\n\n", 1)[1] in got.data  # body unchanged
    p.wait_log(r"%s: to=<(someone|other)@elsewhere\.test>.*relay=capture"
               % got.queue_id)


def test_maildir_and_capture_routes(env):
    p = env.postfix
    n0 = len(p.captured())
    for rcpt in ("alice@local.test", "zed@local.test", "carol@local.test"):
        p.send("outside@sender.test", [rcpt],
               make_message(1100, to=rcpt, subject="route " + rcpt))
    alice = p.wait_maildir("alice", 1)
    with open(alice[-1], "rb") as f:
        data = f.read()
    assert b"Subject: route alice@local.test" in data
    assert b"Delivered-To: alice@local.test" in data
    assert os.stat(alice[-1]).st_uid == p.mail_uid
    p.wait_maildir("catchall", 1)
    assert any(b"route zed@local.test" in m
               for m in p.maildir_messages("catchall"))
    caps = p.wait_captured(n0 + 1)
    assert [c.recipients for c in caps[n0:]] == [["carol@local.test"]]
    assert p.maildir_files("carol") == []


def test_fetch_invalid_stays_deferred(env):
    p = env.postfix
    n0 = len(p.captured())
    p.send("outside@sender.test", ["acct@fetch.invalid"],
           make_message(1200, to="acct@fetch.invalid"))
    ids = p.wait_queue("deferred", 1)
    assert len(ids) == 1, ids
    qid = ids[0]
    q = p.queue_json()  # postqueue -c DIR -j
    assert [(m["queue_id"], m["queue_name"]) for m in q] == [
        (qid, "deferred")], q
    assert q[0]["recipients"] == [{"address": "acct@fetch.invalid",
                                   "delay_reason": "deferred transport"}], q
    assert "acct@fetch.invalid" in p.postqueue("-p")
    assert "acct@fetch.invalid" in p.postcat(qid)
    p.wait_log(r"%s: to=<acct@fetch\.invalid>.*status=deferred "
               r"\(deferred transport\)" % qid)
    # postqueue -f overrides defer_transports: fetchhold then tries
    # [127.0.0.1]:9, is refused, and the message stays deferred
    p.flush()
    p.wait_log(r"%s: to=<acct@fetch\.invalid>, relay=none.*status=deferred "
               r"\(connect to 127\.0\.0\.1\[127\.0\.0\.1\]:9" % qid)
    p.wait_queue("deferred", 1)
    assert p.queue("deferred") == [qid]
    assert len(p.captured()) == n0
    p.purge()
    assert p.queue("deferred") == [] and p.queue_json() == []


def test_fetch_listener_tempfails_without_milter(env):
    p = env.postfix
    assert not os.path.exists(p.milter_socket)
    n0 = len(p.captured())
    with smtplib.SMTP(p.host, p.fetch_port, timeout=10) as s:
        code, _ = s.ehlo("fetcher.test")
        assert code == 250
        stages = [("MAIL", lambda: s.mail("a@remote.test")),
                  ("RCPT", lambda: s.rcpt("acct@fetch.invalid")),
                  ("DATA", lambda: s.data(make_message(1300)))]
        for stage, fn in stages:
            code, text = fn()
            if code // 100 != 2 and code != 354:
                break
        else:
            raise AssertionError("fetch listener accepted mail with no "
                                 "milter running")
    assert 400 <= code < 500, (stage, code, text)
    assert (stage, code) == ("MAIL", 451), (stage, code, text)  # as doc'd
    assert p.queue("incoming") == [] and p.queue("active") == []
    assert len(p.captured()) == n0
    assert "connect to Milter service unix:%s" % p.milter_socket \
        in p.log_text()


def test_milter_socket_reachable_by_postfix(env):
    # A socket created in milter_dir (root:postfix 2770) with umask 007 is
    # group postfix and group-writable: smtpd (user postfix) can connect.
    p = env.postfix
    old = os.umask(0o007)
    try:
        srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        srv.bind(p.milter_socket)
    finally:
        os.umask(old)
    srv.listen(4)
    srv.settimeout(10)
    accepted = []

    def accept():  # smtpd talks to the milter before its 220 banner
        try:
            conn, _ = srv.accept()
            accepted.append(conn.recv(4096))  # SMFIC_OPTNEG from Postfix
            conn.close()  # no milter reply -> milter_default_action
        except OSError as e:
            accepted.append(e)

    t = threading.Thread(target=accept)
    t.start()
    try:
        st = os.stat(p.milter_socket)
        assert st.st_gid == __import__("grp").getgrnam("postfix").gr_gid
        with smtplib.SMTP(p.host, p.fetch_port, timeout=10) as s:
            s.ehlo("fetcher.test")
            code, text = s.mail("a@remote.test")
        t.join(10)
        assert accepted and isinstance(accepted[0], bytes), accepted
        assert accepted[0][4:5] == b"O", accepted  # option negotiation
        assert code == 451, (code, text)
    finally:
        srv.close()
        t.join(10)
        os.unlink(p.milter_socket)


def test_size_limit_and_postconf(env):
    p = env.postfix
    assert int(p.postconf("message_size_limit")) >= 200 * 1024 * 1024
    assert p.postconf("queue_directory") == p.queue_dir
    assert p.postconf("inet_interfaces") == "127.0.0.1"
    for port in (p.plain_port, p.fetch_port):
        with smtplib.SMTP(p.host, port, timeout=10) as s:
            s.ehlo("x.test")
            assert int(s.esmtp_features["size"]) == p.message_size_limit
    st = os.stat(p.milter_dir)
    assert st.st_mode & 0o070 == 0o070 and st.st_gid == \
        __import__("grp").getgrnam("postfix").gr_gid


# --------------------------------------------------------------------------
# Messages, stale cleanup, CLI

def test_make_message(env):
    for size in (100, 1000, 2048, 100000):
        for crlf in (False, True):
            m = make_message(7, size=size, crlf=crlf)
            if size > 900:  # larger than the header block: exact
                assert len(m) == size, (size, crlf, len(m))
            else:
                assert size < len(m) < 900, (size, crlf, len(m))
            lines = m.split(b"\r\n" if crlf else b"\n")
            if not crlf:
                assert b"\r" not in m
            assert all(len(l) <= 998 for l in lines)
            msg = email.message_from_bytes(m, policy=email.policy.default)
            for h in ("From", "To", "Subject", "Date", "Message-ID",
                      "Received"):
                assert msg[h], h
    m = make_message(8, tricky=True)
    assert b"\n.leading dot line" in m and b"\nFrom here" in m


def test_cleanup_stale_kills_orphaned_fixture(env):
    # A child process starts a Dovecot and dies without stopping it.
    code = ("import sys, json; sys.path.insert(0, %r); import haulfix; "
            "d = haulfix.Dovecot(pki=haulfix.PKI(%r)); d.start(); "
            "print(json.dumps([d.pid, d.dir]), flush=True); "
            "import os; os._exit(0)" % (env.fixtures, env.pki.dir))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    pid, fdir = json.loads(r.stdout.strip().splitlines()[-1])
    assert haulfix._alive(pid) and os.path.isdir(fdir)
    assert os.path.exists(haulfix._reg_path(fdir))
    # our own fixtures (owner alive) must survive the cleanup
    cleaned = haulfix.cleanup_stale()
    assert fdir in cleaned, cleaned
    assert env.dovecot.dir not in cleaned and env.postfix.dir not in cleaned
    assert env.dovecot.running() and env.postfix.running()
    assert not haulfix._alive(pid) and not haulfix._group_members(pid)
    assert not os.path.exists(fdir)
    assert not os.path.exists(haulfix._reg_path(fdir))


def test_cli_up_seed_down(env):
    d = os.path.join(env.tmpdir, "cli")

    def cli(*args):
        r = subprocess.run([sys.executable, HAULFIX] + list(args),
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        return dict(l.split("=", 1) for l in r.stdout.splitlines()
                    if "=" in l)

    kv = cli("up", d)
    try:
        for k in ("IMAP_PORT", "IMAPS_PORT", "POP3_PORT", "POP3S_PORT",
                  "LMTP_PORT", "SMTP_PLAIN_PORT", "SMTP_FETCH_PORT",
                  "MILTER_SOCKET", "CA_FILE", "PASSWORD_alice",
                  "DOVECOT_PID", "POSTFIX_PID"):
            assert kv.get(k), (k, kv)
        assert open(os.path.join(d, "haulfix.env")).read().count("=") \
            == len(kv)
        assert cli("seed", d, "alice", "3", "1500")["SEEDED"] == "3"
        ctx = haulfix.ssl_context(kv["CA_FILE"])
        c = imaplib.IMAP4_SSL("localhost", int(kv["IMAPS_PORT"]),
                              ssl_context=ctx, timeout=10)
        c.login("alice", kv["PASSWORD_alice"])
        assert c.select("INBOX", readonly=True)[1] == [b"3"]
        c.logout()
        with smtplib.SMTP("127.0.0.1", int(kv["SMTP_PLAIN_PORT"]),
                          timeout=10) as s:
            assert s.noop()[0] == 250
        # not owned by this process: a cleanup must leave it alone
        assert not any(x.startswith(d) for x in haulfix.cleanup_stale())
    finally:
        # `down` runs in another process, but the orphaned daemons are our
        # children (the harness is a subreaper): collect them afterwards
        members = [m for k in ("DOVECOT_PID", "POSTFIX_PID") if kv.get(k)
                   for m in haulfix._group_members(int(kv[k]))]
        out = cli("down", d)
        for m in members:
            haulfix._reap(m)
    assert "HAULFIX_DOWN" in out
    for k in ("DOVECOT_PID", "POSTFIX_PID"):
        pid = int(kv[k])
        assert not haulfix._alive(pid) and not haulfix._group_members(pid)
