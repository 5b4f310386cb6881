# ISC License; see LICENSE.
"""hauld fetching POP3 end to end: the private Dovecot (POP3S and
POP3+STLS) -> hauld -1 -> the private Postfix (plain listener) -> maildir.

Checks byte-exact delivery of 1000 varied messages (the delivered file minus
Postfix's and haul's prepended headers is the original in CRLF form, minus
any X-Haul-* header it carried), keep vs delete on the server (Dovecot's
count and its logout line's del=N/M), and that a second run delivers
nothing twice.  Every run: hauld exits 0 (no signal, no timeout) and the
test passwords never appear in its (debug) log.
"""

import hashlib
import random
import re
import time

import haulfix
from haulfix import Dovecot, Postfix, make_message, timeout
from hauldrun import Hauld, header

TIMEOUT = 60
SETUP_TIMEOUT = 60

# Dovecot user == Postfix maildir user (deliver_to USER@local.test).
USERS = ("big", "sdel", "tkeep", "tdel", "lsrc", "ldst")
PASSWORDS = {u: "Tst-%s-pw-%s" % (u, "Zq8rK2vW") for u in USERS}


def setup_module(env):
    haulfix.need_root()
    haulfix.need_binaries("dovecot", "postfix", "postconf", "openssl")
    env.need("hauld")
    env.dovecot = Dovecot(users=PASSWORDS)
    env.postfix = Postfix(users=USERS, catch_all=False)
    env.dovecot.start()
    env.postfix.start()


def teardown_module(env):
    for name in ("dovecot", "postfix"):
        f = getattr(env, name, None)
        if f is not None:
            f.close()


# --------------------------------------------------------------------------
# helpers


def varied_messages(n, user, seed=1):
    """n varied messages (make_message): sizes from 0.3 KB to 300 KB (the
    largest spill hauld's spool to disk), LF and CRLF files, tricky bodies
    (dot-stuffing and mbox traps), 8-bit UTF-8 bodies, empty bodies and
    messages that carry X-Haul-* headers (hauld must drop those)."""
    rng = random.Random(seed)
    to = "%s@remote.test" % user
    out = []
    for i in range(1, n + 1):
        size = rng.choice((300, 700, 1500, 2048, 3000, 5000, 9000, 20000,
                           40000))
        if i % 400 == 7:
            size = 300 * 1024
        kw = {"size": size, "crlf": i % 2 == 0, "tricky": i % 3 == 0,
              "to": to}
        if i % 50 == 11:
            kw["body"] = ("Gr\u00fc\u00dfe aus K\u00f6ln, message %d\n"
                          ".\n..dots\n\u00e9t\u00e9 \u2603\n" % i) * 20
        elif i % 61 == 5:
            kw["body"] = ""
        if i % 97 == 13:
            kw["headers"] = [("X-Haul-Token", "v=1; forged=yes; i=%d" % i),
                             ("X-Haul-Trace", "forged\n\tcontinued")]
        out.append(make_message(100000 + i, **kw))
    return out


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _fields(data):
    """Split the header block of CRLF data into (name_lower, raw_field)
    and return (fields, body_offset)."""
    fields = []
    pos = 0
    while True:
        end = data.find(b"\r\n", pos)
        if end < 0 or end == pos:
            return fields, pos
        nxt = end + 2
        while data[nxt:nxt + 1] in (b" ", b"\t"):
            e2 = data.find(b"\r\n", nxt)
            if e2 < 0:
                break
            nxt = e2 + 2
        raw = data[pos:nxt]
        fields.append((raw.split(b":", 1)[0].lower(), raw))
        pos = nxt


def expected_form(orig):
    """The original as hauld must pass it on: CRLF, X-Haul-* headers
    removed from the header block, nothing else changed."""
    data = crlf(orig)
    fields, off = _fields(data)
    keep = b"".join(raw for name, raw in fields
                    if not name.startswith(b"x-haul-"))
    return keep + data[off:]


def strip_prepended(maildir_file):
    """The MTA's maildir copy (LF) -> (haul Received fields, haul token
    fields, the rest as CRLF bytes).  Strips, from the top only:
    Return-Path, X-Original-To, Delivered-To, Postfix's (or Dovecot
    LMTP's) own Received, and haul's Received (via pop3 account ...) and
    X-Haul-Token."""
    data = crlf(maildir_file)
    fields, _ = _fields(data)
    pos = 0
    haul_rcvd, haul_tok = [], []
    for name, raw in fields:
        if name in (b"return-path", b"x-original-to", b"delivered-to"):
            pass
        elif name == b"received" and re.search(
                rb"by mx\.haul-fix\.test \(Postfix\)| with LMTP id ",
                re.sub(rb"\r\n[ \t]+", b" ", raw)):
            pass    # Postfix's, or Dovecot LMTP's
        elif name == b"received" and b"(via pop3 account " in \
                re.sub(rb"\r\n[ \t]+", b" ", raw):
            haul_rcvd.append(raw)
        elif name == b"x-haul-token":
            haul_tok.append(raw)
        else:
            break
        pos += len(raw)
    return haul_rcvd, haul_tok, data[pos:]


def haul_uid(received, account, host):
    """The UID named by haul's Received, which must also name the
    account and the POP3 server it came from."""
    text = re.sub(rb"\r\n[ \t]+", b" ", received).decode("latin-1")
    m = re.match(r"Received: from (\S+) \(via pop3 account (\S+) uid "
                 r"(\S+)\)", text)
    assert m, "unexpected haul Received: %r" % text
    assert (m.group(1), m.group(2)) == (host, account), text
    return m.group(3)


def dovecot_uid_map(d, user):
    """{UIDL: Message-ID} of user's INBOX (pop3_uidl_format %08Xu%08Xv,
    lower-case hex in Dovecot)."""
    out = {}
    with d.imap_session(user) as c:
        typ, data = c.select("INBOX", readonly=True)
        assert typ == "OK", data
        uv = int(c.untagged_responses["UIDVALIDITY"][0])
        typ, data = c.uid("FETCH", "1:*",
                          "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        assert typ == "OK", data
        for item in data:
            if not isinstance(item, tuple):
                continue
            uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
            mid = header(item[1], "Message-ID")
            out["%08x%08x" % (uid, uv)] = mid
    return out


def dovecot_logouts(d, user):
    """[(retr, dele, listed)] from Dovecot's POP3 logout lines for user
    ("Logged out top=0/0, retr=5/10530, del=0/5, size=...")."""
    with open(d.log_file, encoding="utf-8", errors="replace") as f:
        text = f.read()
    return [(int(m.group(1)), int(m.group(2)), int(m.group(3)))
            for m in re.finditer(
                r"pop3\(%s\)<[^\n]*Logged out [^\n]*retr=(\d+)/\d+, "
                r"del=(\d+)/(\d+)" % re.escape(user), text)]


def wait_dovecot_logouts(d, user, n, timeout=5):
    end = time.monotonic() + timeout
    while True:
        got = dovecot_logouts(d, user)
        if len(got) >= n or time.monotonic() > end:
            return got
        time.sleep(0.05)


def wait_postfix_idle(p, timeout=30):
    """Until Postfix has nothing queued (every accepted message is in a
    maildir or bounced)."""
    end = time.monotonic() + timeout
    while True:
        q = p.queue()
        if not any(q[k] for k in ("maildrop", "incoming", "active",
                                  "deferred")):
            return
        if time.monotonic() > end:
            raise AssertionError("Postfix queue not empty: %r\n%s"
                                 % (q, p.logs(20)))
        time.sleep(0.05)


def check_delivered(p, user, originals, account, host, uidmap=None,
                    token=True):
    """Every maildir message of user (p: the Postfix or Dovecot fixture
    that holds the maildir) is byte-exact one of originals (by
    Message-ID), each original exactly once; haul's Received names the
    account and (with uidmap) the message's real UIDL."""
    by_id = {header(m, "Message-ID"): m for m in originals}
    assert len(by_id) == len(originals), "Message-IDs are not unique"
    seen = {}
    files = p.maildir_files(user)
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        rcvd, tok, rest = strip_prepended(data)
        assert len(rcvd) == 1, "%s: %d haul Received headers:\n%r" % (
            path, len(rcvd), data[:800])
        assert len(tok) == (1 if token else 0), \
            "%s: %d X-Haul-Token headers" % (path, len(tok))
        mid = header(rest, "Message-ID")
        assert mid in by_id, "%s: unknown Message-ID %r; top:\n%r" % (
            path, mid, rest[:600])
        assert mid not in seen, "Message-ID %s delivered twice (%s, %s)" % (
            mid, seen[mid], path)
        seen[mid] = path
        want = expected_form(by_id[mid])
        if hashlib.sha256(rest).digest() != hashlib.sha256(want).digest():
            i = next((k for k in range(min(len(rest), len(want)))
                      if rest[k] != want[k]), min(len(rest), len(want)))
            raise AssertionError(
                "%s (Message-ID %s) differs from the original at byte %d "
                "(got %d bytes, want %d):\n got  %r\n want %r"
                % (path, mid, i, len(rest), len(want), rest[max(0, i - 60):
                                                             i + 60],
                   want[max(0, i - 60):i + 60]))
        uid = haul_uid(rcvd[0], account, host)
        if uidmap is not None:
            assert uidmap.get(uid) == mid, \
                "Received names uid %s, which is %r on the server, for " \
                "the message %s" % (uid, uidmap.get(uid), mid)
    missing = set(by_id) - set(seen)
    assert not missing, "%d messages not delivered, e.g. %s" % (
        len(missing), sorted(missing)[:3])
    return len(files)


def new_hauld(env, name, user, **acct):
    h = Hauld(env.hauld, env.tmpdir)
    h.smtp(env.postfix.plain_port)
    opts = {"host": "localhost", "user": user, "ca_file": env.dovecot.ca_file,
            "deliver_to": ["%s@local.test" % user]}
    opts.update(acct)
    h.account(name, password=PASSWORDS[user], **opts)
    return h


def assert_no_dele(r):
    dele = r.grep(r"pop3: C: DELE")
    assert not dele, "keep=yes but hauld sent DELE: %s" % dele[:3]


# --------------------------------------------------------------------------
# tests


@timeout(150)
def test_pop3s_keep_1000_byte_exact_then_restart(env):
    """POP3S, keep=yes, 1000 varied messages: every one delivered exactly
    once and byte-exact; all stay on the server with no DELE; a second run
    delivers nothing."""
    d, p, user = env.dovecot, env.postfix, "big"
    originals = varied_messages(1000, user)
    d.seed(user, originals)
    uidmap = dovecot_uid_map(d, user)
    assert len(uidmap) == 1000
    h = new_hauld(env, "big-pop3s", user, port=d.pop3s_port, tls="implicit",
                  keep=True)
    t0 = time.monotonic()
    r = h.run(debug=False, timeout=60)
    r.check(h, rcs=(0,))
    env.log("run 1: %.1fs" % r.elapsed)
    s = r.session("big-pop3s")
    assert (s["fetched"], s["delivered"], s["refused"], s["deleted"]) == \
        (1000, 1000, 0, 0), s
    uids = r.delivered_uids("big-pop3s")
    assert len(uids) == 1000 and len(set(uids)) == 1000, \
        "%d delivered lines, %d distinct" % (len(uids), len(set(uids)))
    assert set(uids) == set(uidmap), "delivered UIDs differ from UIDL"
    p.wait_maildir(user, 1000, timeout=60)
    wait_postfix_idle(p)
    env.log("run 1 + Postfix: %.1fs" % (time.monotonic() - t0))
    assert check_delivered(p, user, originals, "big-pop3s", "localhost",
                           uidmap) == 1000
    assert d.count(user) == 1000
    lo = wait_dovecot_logouts(d, user, 1)
    assert lo and lo[-1] == (1000, 0, 1000), \
        "Dovecot logout (retr, del, msgs): %r" % lo

    # restart: the store knows every UID; nothing is fetched again
    r2 = h.run()
    r2.check(h, rcs=(0,))
    s2 = r2.session("big-pop3s")
    assert (s2["fetched"], s2["delivered"], s2["deleted"]) == (0, 0, 0), s2
    assert_no_dele(r2)
    assert not r2.grep(r"pop3: C: RETR"), "second run RETRieved messages"
    wait_postfix_idle(p)
    time.sleep(0.3)
    assert len(p.maildir_files(user)) == 1000, "re-delivered on restart"
    assert d.count(user) == 1000
    lo = wait_dovecot_logouts(d, user, 2)
    assert lo[-1] == (0, 0, 1000), lo


def test_pop3s_delete(env):
    """POP3S, keep=no: delivered byte-exact, the mailbox is emptied (DELE
    for every message, committed), and a second run finds nothing."""
    d, p, user = env.dovecot, env.postfix, "sdel"
    originals = varied_messages(40, user, seed=2)
    d.seed(user, originals)
    uidmap = dovecot_uid_map(d, user)
    h = new_hauld(env, "sdel", user, port=d.pop3s_port, tls="implicit",
                  keep=False)
    r = h.run()
    r.check(h, rcs=(0,))
    s = r.session()
    assert (s["fetched"], s["delivered"], s["deleted"]) == (40, 40, 40), s
    assert d.count(user) == 0, "keep=no left messages on the server"
    lo = wait_dovecot_logouts(d, user, 1)
    assert lo[-1] == (40, 40, 40), lo
    p.wait_maildir(user, 40)
    wait_postfix_idle(p)
    check_delivered(p, user, originals, "sdel", "localhost", uidmap)

    r2 = h.run()
    r2.check(h, rcs=(0,))
    s2 = r2.session()
    assert (s2["fetched"], s2["delivered"], s2["deleted"]) == (0, 0, 0), s2
    wait_postfix_idle(p)
    assert len(p.maildir_files(user)) == 40


def test_stls_keep_restart_and_new_mail(env):
    """POP3 + STLS (tls=starttls), keep=yes: delivered byte-exact, nothing
    deleted; after new mail arrives a second run delivers only the new
    messages, a third delivers nothing."""
    d, p, user = env.dovecot, env.postfix, "tkeep"
    first = varied_messages(30, user, seed=3)
    d.seed(user, first)
    h = new_hauld(env, "tkeep", user, port=d.pop3_port, tls="starttls",
                  keep=True)
    r = h.run()
    r.check(h, rcs=(0,))
    s = r.session()
    assert (s["fetched"], s["delivered"], s["deleted"]) == (30, 30, 0), s
    assert_no_dele(r)
    assert r.grep(r"pop3: C: STLS"), "no STLS sent with tls=starttls"
    p.wait_maildir(user, 30)
    wait_postfix_idle(p)
    check_delivered(p, user, first, "tkeep", "localhost")
    assert d.count(user) == 30
    assert wait_dovecot_logouts(d, user, 1)[-1] == (30, 0, 30)
    # Dovecot saw the login under TLS
    with open(d.log_file, errors="replace") as f:
        logins = [ln for ln in f if "Login: user=<%s>" % user in ln]
    assert logins and all("TLS" in ln for ln in logins), logins

    second = [make_message(200000 + i, size=1500 + 100 * i,
                           to="%s@remote.test" % user, tricky=i % 2 == 0)
              for i in range(5)]
    d.seed(user, second)
    r2 = h.run()
    r2.check(h, rcs=(0,))
    s2 = r2.session()
    assert (s2["fetched"], s2["delivered"], s2["deleted"]) == (5, 5, 0), s2
    assert_no_dele(r2)
    p.wait_maildir(user, 35)
    wait_postfix_idle(p)
    check_delivered(p, user, first + second, "tkeep", "localhost")

    r3 = h.run()
    r3.check(h, rcs=(0,))
    assert r3.session()["delivered"] == 0
    wait_postfix_idle(p)
    time.sleep(0.2)
    assert len(p.maildir_files(user)) == 35
    assert d.count(user) == 35


def test_stls_delete_strict_host(env):
    """POP3 + STLS, keep=no, against Dovecot's strict address 127.0.0.2
    (plaintext login refused before TLS, as on a real server; the cert
    names the IP): mailbox emptied, delivered exactly once."""
    d, p, user = env.dovecot, env.postfix, "tdel"
    originals = varied_messages(25, user, seed=4)
    d.seed(user, originals)
    h = new_hauld(env, "tdel", user, host=d.strict_host, port=d.pop3_port,
                  tls="starttls", keep=False)
    r = h.run()
    r.check(h, rcs=(0,))
    s = r.session()
    assert (s["fetched"], s["delivered"], s["deleted"]) == (25, 25, 25), s
    assert d.count(user) == 0
    assert wait_dovecot_logouts(d, user, 1)[-1] == (25, 25, 25)
    p.wait_maildir(user, 25)
    wait_postfix_idle(p)
    check_delivered(p, user, originals, "tdel", d.strict_host)
    r2 = h.run()
    r2.check(h, rcs=(0,))
    assert r2.session()["delivered"] == 0
    wait_postfix_idle(p)
    assert len(p.maildir_files(user)) == 25


def test_pop3s_delete_into_lmtp(env):
    """mode = lmtp into Dovecot's LMTP (another user of the same
    Dovecot), keep=no: byte-exact, exactly once, source emptied."""
    d, src, dst = env.dovecot, "lsrc", "ldst"
    originals = varied_messages(20, src, seed=5)
    d.seed(src, originals)
    uidmap = dovecot_uid_map(d, src)
    h = Hauld(env.hauld, env.tmpdir)
    h.smtp(d.lmtp_port, mode="lmtp")
    h.account("lmtp", password=PASSWORDS[src], host="localhost",
              port=d.pop3s_port, tls="implicit", ca_file=d.ca_file,
              user=src, keep=False, deliver_to=["%s@local.test" % dst])
    r = h.run()
    r.check(h, rcs=(0,))
    s = r.session()
    assert (s["fetched"], s["delivered"], s["deleted"]) == (20, 20, 20), s
    assert d.count(src) == 0
    assert d.count(dst) == 20
    check_delivered(d, dst, originals, "lmtp", "localhost", uidmap)
    r2 = h.run()
    r2.check(h, rcs=(0,))
    assert r2.session()["delivered"] == 0
    assert d.count(dst) == 20
