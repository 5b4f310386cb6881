# ISC License; see LICENSE.
"""hauld fetching IMAP end to end: the private Dovecot (IMAPS and
IMAP+STARTTLS) -> hauld -> the private Postfix (plain listener) -> maildir.

- keep: EXAMINE and BODY.PEEK[] only (no \\Seen set, nothing stored or
  expunged); 1000 varied messages byte-exact (the delivered file minus
  Postfix's and haul's prepended fields is the original in CRLF form,
  minus any X-Haul-* field it carried); a restart delivers nothing twice.
- delete (UID STORE \\Deleted + UID EXPUNGE, each after its delivery),
  move_to (UID MOVE), mark_seen, delete_after_days.
- IDLE: hauld -f as a daemon; a second client APPENDs and the message
  reaches Postfix within seconds while hauld stays connected (one Dovecot
  login per idled folder); several folders and two accounts idling at
  once.
- The mailbox deleted and recreated (UIDVALIDITY change): no loss, no
  re-delivery flood (Message-ID + size + Date matching).

Every hauld run: exit 0 (no signal, no timeout) and the test passwords
never appear in its debug log.
"""

import hashlib
import os
import re
import time

import haulfix
from haulfix import Dovecot, Postfix, make_message, timeout
from hauldrun import Hauld, header
from imaprun import (Daemon, commands_matching, delivered, delivered_uids,
                     expected_form, folder_ends, haul_origin, imap_account,
                     imap_commands, need_test_hooks, strip_prepended,
                     varied_messages)

TIMEOUT = 60
SETUP_TIMEOUT = 60

USERS = ("big", "tkeep", "sdel", "mv", "seen", "dad", "push", "multi",
         "multi2", "uvc", "uvi")
PASSWORDS = {u: "Im-%s-pw-%s" % (u, "Xq4rT7vB") for u in USERS}


def setup_module(env):
    haulfix.need_root()
    haulfix.need_binaries("dovecot", "postfix", "postconf", "openssl")
    env.need("hauld", "haulctl")
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


def new_hauld(env, name, user, **acct):
    h = Hauld(env.hauld, os.path.join(env.tmpdir, name))
    h.smtp(env.postfix.plain_port)
    opts = {"host": "localhost", "user": user, "port":
            env.dovecot.imaps_port, "tls": "implicit",
            "ca_file": env.dovecot.ca_file,
            "deliver_to": ["%s@local.test" % user]}
    opts.update(acct)
    imap_account(h, name, PASSWORDS[user], **opts)
    return h


def q(folder):
    return Dovecot._q(folder)


def uid_map(d, user, folder="INBOX"):
    """(uidvalidity, {uid: Message-ID}) of a Dovecot folder."""
    out = {}
    with d.imap_session(user) as c:
        typ, data = c.select(q(folder), readonly=True)
        assert typ == "OK", data
        uv = int(c.untagged_responses["UIDVALIDITY"][0])
        if int(data[0]) == 0:
            return uv, out
        typ, data = c.uid("FETCH", "1:*",
                          "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        assert typ == "OK", data
        for item in data:
            if isinstance(item, tuple):
                uid = int(re.search(rb"UID (\d+)", item[0]).group(1))
                out[uid] = header(item[1], "Message-ID")
    return uv, out


def flags_of(d, user, folder="INBOX"):
    """{uid: flags bytes} of a Dovecot folder (EXAMINE: changes
    nothing)."""
    out = {}
    with d.imap_session(user) as c:
        typ, data = c.select(q(folder), readonly=True)
        assert typ == "OK", data
        if int(data[0]) == 0:
            return out
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
        for item in data:
            m = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", item)
            out[int(m.group(1))] = m.group(2)
    return out


def wait_postfix_idle(p, timeout=30):
    end = time.monotonic() + timeout
    while True:
        qs = p.queue()
        if not any(qs[k] for k in ("maildrop", "incoming", "active",
                                   "deferred")):
            return
        if time.monotonic() > end:
            raise AssertionError("Postfix queue not empty: %r\n%s"
                                 % (qs, p.logs(20)))
        time.sleep(0.05)


def check_delivered(p, user, originals, account, folder="INBOX",
                    uidmap=None, host="localhost"):
    """Every maildir message of user is byte-exact one of originals (by
    Message-ID), each original exactly once; haul's Received names the
    IMAP account, the folder and (with uidmap) the message's real UID."""
    by_id = {header(m, "Message-ID"): m for m in originals}
    assert len(by_id) == len(originals), "Message-IDs are not unique"
    seen = {}
    for path in p.maildir_files(user):
        with open(path, "rb") as f:
            data = f.read()
        rcvd, tok, rest = strip_prepended(data)
        assert len(rcvd) == 1 and len(tok) == 1, \
            "%s: %d haul Received, %d X-Haul-Token:\n%r" % (
                path, len(rcvd), len(tok), data[:800])
        mid = header(rest, "Message-ID")
        assert mid in by_id, "%s: unknown Message-ID %r" % (path, mid)
        assert mid not in seen, "Message-ID %s delivered twice" % mid
        seen[mid] = path
        want = expected_form(by_id[mid])
        if hashlib.sha256(rest).digest() != hashlib.sha256(want).digest():
            i = next((k for k in range(min(len(rest), len(want)))
                      if rest[k] != want[k]), min(len(rest), len(want)))
            raise AssertionError(
                "%s (Message-ID %s) differs from the original at byte %d "
                "(got %d bytes, want %d):\n got  %r\n want %r"
                % (path, mid, i, len(rest), len(want),
                   rest[max(0, i - 60):i + 60], want[max(0, i - 60):i + 60]))
        h, proto, acct, mbox, uid = haul_origin(rcvd[0])
        assert (h, proto, acct, mbox) == (host, "imap", account, folder), \
            rcvd[0]
        if uidmap is not None:
            assert uidmap.get(int(uid)) == mid, \
                "Received names uid %s, which is %r on the server, for %s" \
                % (uid, uidmap.get(int(uid)), mid)
    missing = set(by_id) - set(seen)
    assert not missing, "%d messages not delivered, e.g. %s" % (
        len(missing), sorted(missing)[:3])
    return len(seen)


def maildir_ids(p, user):
    out = []
    for path in p.maildir_files(user):
        with open(path, "rb") as f:
            out.append(header(f.read(), "Message-ID"))
    return out


def assert_keep_trace(r):
    """I3 from hauld's own trace: EXAMINE, BODY.PEEK, nothing else that
    changes the server."""
    cmds = imap_commands(r)
    bad = [c for c in cmds if re.search(
        r"^\S+ (SELECT|(UID )?STORE|(UID )?EXPUNGE|(UID )?MOVE|(UID )?COPY|"
        r"CLOSE)\b|BODY\[", c)]
    assert not bad, "keep=yes but hauld sent: %s" % bad[:5]
    return cmds


def dovecot_logins(d, user, tls=None):
    """Dovecot's imap-login 'Login:' lines for user (tls: only those
    over TLS / only those without)."""
    pat = re.compile(r"imap-login: (?:Info: )?Login: user=<%s>," %
                     re.escape(user))
    with open(d.log_file, encoding="utf-8", errors="replace") as f:
        lines = [ln for ln in f if pat.search(ln)]
    if tls is not None:
        lines = [ln for ln in lines if (", TLS" in ln) == tls]
    return lines


def append_plain(d, user, folder, data):
    """APPEND as a second client over a cleartext local login, so its
    Dovecot login is told apart from hauld's TLS ones."""
    c = d.imap(user, ssl_mode="plain")
    try:
        if folder.upper() != "INBOX":
            c.create(q(folder))
        typ, resp = c.append(q(folder), None, None, data)
        assert typ == "OK", resp
    finally:
        c.logout()


def assert_flags_unchanged(d, user, before, folder="INBOX"):
    after = flags_of(d, user, folder)
    assert after == before, "flags changed on the server: %s" % {
        u: (before.get(u), after.get(u)) for u in set(before) | set(after)
        if before.get(u) != after.get(u)}


# --------------------------------------------------------------------------
# keep


@timeout(150)
def test_imaps_keep_1000_byte_exact_then_restart(env):
    """IMAPS, keep=yes, 1000 varied messages: each delivered exactly once
    and byte-exact, under its real UID; none gets \\Seen or leaves the
    server; a second run fetches and delivers nothing."""
    d, p, user = env.dovecot, env.postfix, "big"
    originals = varied_messages(1000, user)
    d.seed(user, originals)
    uv, uidmap = uid_map(d, user)
    assert len(uidmap) == 1000
    before = flags_of(d, user)
    h = new_hauld(env, "big", user, keep=True)
    t0 = time.monotonic()
    r = h.run(debug=False, timeout=90)
    r.check(h, rcs=(0,))
    env.log("run 1: %.1fs" % r.elapsed)
    uids = delivered_uids(r, "big")
    assert len(uids) == 1000 and len(set(uids)) == 1000, \
        "%d delivered lines, %d distinct" % (len(uids), len(set(uids)))
    assert set(uids) == set(uidmap), "delivered UIDs differ from the server"
    ends = folder_ends(r, "big")
    assert ends == [{"fetched": 1000, "error": None}], ends
    p.wait_maildir(user, 1000, timeout=60)
    wait_postfix_idle(p)
    env.log("run 1 + Postfix: %.1fs" % (time.monotonic() - t0))
    assert check_delivered(p, user, originals, "big", "INBOX", uidmap) == \
        1000
    assert d.count(user) == 1000
    assert_flags_unchanged(d, user, before)

    r2 = h.run()
    r2.check(h, rcs=(0,))
    assert delivered(r2) == [], "second run delivered again"
    cmds = assert_keep_trace(r2)
    assert [c for c in cmds if "EXAMINE" in c], cmds
    assert not commands_matching(r2, r"BODY\.PEEK"), \
        "second run fetched bodies again"
    listing = commands_matching(r2, r"UID FETCH \S+ \(UID RFC822\.SIZE\)")
    assert listing and listing[0].split()[3] == "%d:*" % (max(uidmap) + 1), \
        "restart does not list from the high-water mark: %s" % listing
    wait_postfix_idle(p)
    time.sleep(0.3)
    assert len(p.maildir_files(user)) == 1000, "re-delivered on restart"


def test_starttls_keep_new_mail_no_seen(env):
    """IMAP + STARTTLS, keep=yes: EXAMINE + BODY.PEEK[] only, no flag
    changes on the server; new mail: only it is delivered next run; a
    third run delivers nothing.  Dovecot saw the login under TLS."""
    d, p, user = env.dovecot, env.postfix, "tkeep"
    first = varied_messages(20, user, seed=3, start=200000)
    d.seed(user, first)
    _, uidmap = uid_map(d, user)
    before = flags_of(d, user)
    h = new_hauld(env, "tkeep", user, port=d.imap_port, tls="starttls",
                  keep=True)
    r = h.run()
    r.check(h, rcs=(0,))
    assert sorted(delivered_uids(r)) == sorted(uidmap)
    cmds = assert_keep_trace(r)
    first_tls = next((i for i, c in enumerate(cmds) if
                      re.match(r"\S+ STARTTLS$", c)), None)
    first_auth = next((i for i, c in enumerate(cmds) if
                       re.match(r"\S+ (LOGIN|AUTHENTICATE)", c)), None)
    assert first_tls is not None and first_auth is not None and \
        first_tls < first_auth, cmds[:5]
    assert len(commands_matching(r, r"BODY\.PEEK\[\]")) == 20
    p.wait_maildir(user, 20)
    wait_postfix_idle(p)
    check_delivered(p, user, first, "tkeep", "INBOX", uidmap)
    assert_flags_unchanged(d, user, before)
    logins = dovecot_logins(d, user)
    assert logins and all(", TLS" in ln for ln in logins), logins

    second = [make_message(210000 + i, size=1500 + 100 * i,
                           to="%s@remote.test" % user, tricky=i % 2 == 0)
              for i in range(5)]
    d.seed(user, second)
    _, uidmap = uid_map(d, user)
    r2 = h.run()
    r2.check(h, rcs=(0,))
    assert sorted(delivered_uids(r2)) == sorted(uidmap)[20:], \
        delivered(r2)
    assert_keep_trace(r2)
    p.wait_maildir(user, 25)
    wait_postfix_idle(p)
    check_delivered(p, user, first + second, "tkeep", "INBOX", uidmap)
    r3 = h.run()
    r3.check(h, rcs=(0,))
    assert delivered(r3) == []
    assert d.count(user) == 25


def test_mark_seen(env):
    """keep=yes, mark_seen=yes: delivered, then \\Seen set on each (and
    only \\Seen: nothing deleted)."""
    d, p, user = env.dovecot, env.postfix, "seen"
    msgs = varied_messages(8, user, seed=6, start=300000)
    d.seed(user, msgs)
    h = new_hauld(env, "seen", user, keep=True, mark_seen=True)
    r = h.run()
    r.check(h, rcs=(0,))
    assert len(delivered(r)) == 8
    assert not commands_matching(r, r"\\Deleted|EXPUNGE|MOVE")
    fl = flags_of(d, user)
    assert len(fl) == 8 and all(b"\\Seen" in f for f in fl.values()), fl
    p.wait_maildir(user, 8)
    wait_postfix_idle(p)
    check_delivered(p, user, msgs, "seen")
    r2 = h.run()
    r2.check(h, rcs=(0,))
    assert delivered(r2) == []
    assert d.count(user) == 8


# --------------------------------------------------------------------------
# delete, move


def assert_act_after_delivery(r, verb_re):
    """I4 from the trace: each UID's action command comes after the
    'delivered ... uid U' line of that UID."""
    seen = set()
    for ln in r.log.splitlines():
        m = re.search(r"delivered folder \S+ uid (\d+) ", ln)
        if m:
            seen.add(m.group(1))
            continue
        m = re.search(r"imap: C: \S+ " + verb_re + r" (\d+)\b", ln)
        if m:
            assert m.group(1) in seen, \
                "acted on uid %s before its delivery was recorded:\n%s" % (
                    m.group(1), ln)


def test_starttls_delete_strict_host(env):
    """IMAP + STARTTLS on Dovecot's strict address (plaintext login
    refused before TLS), keep=no: each message delivered once, then
    UID STORE \\Deleted + UID EXPUNGE for it (after its delivery); the
    folder ends empty; a second run delivers nothing."""
    d, p, user = env.dovecot, env.postfix, "sdel"
    msgs = varied_messages(30, user, seed=4, start=400000)
    d.seed(user, msgs)
    _, uidmap = uid_map(d, user)
    h = new_hauld(env, "sdel", user, host=d.strict_host, port=d.imap_port,
                  tls="starttls", keep=False)
    r = h.run()
    r.check(h, rcs=(0,))
    assert sorted(delivered_uids(r)) == sorted(uidmap)
    cmds = imap_commands(r)
    assert [c for c in cmds if re.match(r"\S+ SELECT ", c)], cmds
    assert not [c for c in cmds if re.match(r"\S+ EXPUNGE$", c)], \
        "a bare EXPUNGE with UIDPLUS available"
    stored = commands_matching(r, r"UID STORE \d+ \+FLAGS\.SILENT "
                                  r"\(\\Deleted\)")
    assert len(stored) == 30, stored[:3]
    assert len(commands_matching(r, r"UID EXPUNGE \d+")) >= 1
    assert_act_after_delivery(r, r"UID STORE")
    assert_act_after_delivery(r, r"UID EXPUNGE")
    assert d.count(user) == 0, "keep=no left messages on the server"
    p.wait_maildir(user, 30)
    wait_postfix_idle(p)
    check_delivered(p, user, msgs, "sdel", "INBOX", uidmap,
                    host=d.strict_host)
    r2 = h.run()
    r2.check(h, rcs=(0,))
    assert delivered(r2) == []
    wait_postfix_idle(p)
    assert len(p.maildir_files(user)) == 30


def test_imaps_move_to_archive(env):
    """IMAPS, move_to = "Archive": delivered once, then UID MOVE (after
    delivery): INBOX empty, Archive holds every message; a second run
    delivers nothing (and does not look at Archive)."""
    d, p, user = env.dovecot, env.postfix, "mv"
    msgs = varied_messages(10, user, seed=5, start=500000)
    with d.imap_session(user) as c:
        assert c.create(q("Archive"))[0] == "OK"
    d.seed(user, msgs)
    _, uidmap = uid_map(d, user)
    h = new_hauld(env, "mv", user, keep=False, move_to="Archive")
    r = h.run()
    r.check(h, rcs=(0,))
    assert sorted(delivered_uids(r)) == sorted(uidmap)
    moves = commands_matching(r, r"UID MOVE \d+ \"?Archive\"?")
    assert len(moves) == 10, imap_commands(r)
    assert_act_after_delivery(r, r"UID MOVE")
    assert d.count(user) == 0
    assert d.count(user, "Archive") == 10
    _, arch = uid_map(d, user, "Archive")
    assert sorted(arch.values()) == sorted(uidmap.values())
    p.wait_maildir(user, 10)
    wait_postfix_idle(p)
    check_delivered(p, user, msgs, "mv", "INBOX", uidmap)
    r2 = h.run()
    r2.check(h, rcs=(0,))
    assert delivered(r2) == []
    assert d.count(user, "Archive") == 10


def test_delete_after_days(env):
    """keep=yes, delete_after_days=2: kept (EXAMINE-free, but nothing
    deleted) while young; once older (HAUL_TEST_WALL_OFFSET) deleted
    without being delivered again."""
    need_test_hooks(env.hauld)
    d, p, user = env.dovecot, env.postfix, "dad"
    msgs = varied_messages(4, user, seed=7, start=600000)
    d.seed(user, msgs)
    h = new_hauld(env, "dad", user, keep=True, delete_after_days=2)
    r = h.run()
    r.check(h, rcs=(0,))
    assert len(delivered(r)) == 4 and d.count(user) == 4
    assert not commands_matching(r, r"\\Deleted|EXPUNGE")
    env1 = dict(os.environ, HAUL_TEST_WALL_OFFSET=str(86400))
    r = h.run(env=env1)
    r.check(h, rcs=(0,))
    assert delivered(r) == [] and d.count(user) == 4, "deleted too early"
    env3 = dict(os.environ, HAUL_TEST_WALL_OFFSET=str(3 * 86400))
    r = h.run(env=env3)
    r.check(h, rcs=(0,))
    assert delivered(r) == [], "delivered again"
    assert d.count(user) == 0, "old enough but still on the server:\n" + \
        "\n".join(imap_commands(r))
    p.wait_maildir(user, 4)
    wait_postfix_idle(p)
    assert len(p.maildir_files(user)) == 4


# --------------------------------------------------------------------------
# IDLE


def _idle_hauld(env, name, user, **acct):
    h = new_hauld(env, name, user, keep=True, idle=True,
                  poll_interval=3600, **acct)
    h.global_opts["control_socket"] = os.path.join(h.dir, "ctl.sock")
    return h


@timeout(60)
def test_idle_push_same_connection(env):
    """idle=yes: after catching up hauld idles (haulctl: idle_connected);
    a second client APPENDs and the message reaches Postfix within a few
    seconds on the same connection: Dovecot logs one hauld login; the
    next APPEND works the same way (IDLE re-entered)."""
    d, p, user = env.dovecot, env.postfix, "push"
    d.seed(user, varied_messages(2, user, seed=8, start=700000))
    h = _idle_hauld(env, "push", user)
    with Daemon(h) as dm:
        assert dm.ctl("fetch", "push").returncode == 0
        dm.wait(lambda st: st["push"]["idle_connected"], "idle_connected")
        p.wait_maildir(user, 2)
        dm.wait_log(r"imap: C: \S+ IDLE$")
        assert len(dovecot_logins(d, user, tls=True)) == 1
        for i in range(2):
            msg = make_message(710000 + i, size=1800,
                               to="%s@remote.test" % user)
            t0 = time.monotonic()
            append_plain(d, user, "INBOX", msg)
            p.wait_maildir(user, 3 + i, timeout=10)
            lat = time.monotonic() - t0
            env.log("APPEND -> maildir: %.2fs" % lat)
            assert lat < 5, "push took %.1fs" % lat
            dm.wait(lambda st: st["push"]["idle_connected"],
                    "idle again after push %d" % (i + 1))
            dm.wait_log(r"imap: C: \S+ IDLE$", n=2 + i)
        st = dm.status()["push"]
        assert st["delivered"] == 4 and st["state"] != "backoff", st
        logins = dovecot_logins(d, user, tls=True)
        assert len(logins) == 1, "hauld reconnected instead of idling " \
            "(%d TLS logins):\n%s" % (len(logins), "".join(logins))
        assert len(dovecot_logins(d, user, tls=False)) == 2
        assert dm.text().count("imap: greeting ->") == 1
        assert dm.stop() == 0, dm.tail()
    r = dm.run()
    r.check(h)
    assert "hauld stopped" in r.log
    wait_postfix_idle(p)
    assert sorted(set(maildir_ids(p, user))) == sorted(maildir_ids(p, user))
    assert len(p.maildir_files(user)) == 4
    # a restarted daemon idles again and delivers nothing twice
    with Daemon(h) as dm:
        assert dm.ctl("fetch", "push").returncode == 0
        dm.wait(lambda st: st["push"]["idle_connected"], "idle again")
        assert dm.status()["push"]["delivered"] == 0
        assert dm.stop() == 0, dm.tail()
    assert delivered(dm.run()) == []
    wait_postfix_idle(p)
    assert len(p.maildir_files(user)) == 4


@timeout(60)
def test_idle_several_folders_and_accounts(env):
    """Two accounts on one hauld: 'multi' idles on INBOX and Lists/a
    (max_connections = 2, one connection each), 'multi2' on INBOX.  New
    mail in each of the three folders is pushed and delivered; Dovecot
    sees one TLS login per idled folder and no more."""
    d, p = env.dovecot, env.postfix
    d.seed("multi", varied_messages(1, "multi", seed=9, start=800000))
    d.seed("multi", varied_messages(1, "multi", seed=10, start=801000),
           folder="Lists/a")
    d.seed("multi2", varied_messages(1, "multi2", seed=11, start=802000))
    h = _idle_hauld(env, "multi", "multi", folders=["INBOX", "Lists/a"],
                    max_connections=2)
    imap_account(h, "multi2", PASSWORDS["multi2"], host="localhost",
                 port=d.imap_port, tls="starttls", ca_file=d.ca_file,
                 user="multi2", keep=True, idle=True, poll_interval=3600,
                 deliver_to=["multi2@local.test"])
    with Daemon(h) as dm:
        for a in ("multi", "multi2"):
            assert dm.ctl("fetch", a).returncode == 0
        dm.wait(lambda st: st["multi"]["idle_connected"] and
                st["multi2"]["idle_connected"], "both accounts idling")
        dm.wait_log(r"account=multi: imap: C: \S+ IDLE$", n=2)
        dm.wait_log(r"account=multi2: imap: C: \S+ IDLE$", n=1)
        p.wait_maildir("multi", 2)
        p.wait_maildir("multi2", 1)
        pushes = [("multi", "INBOX"), ("multi", "Lists/a"),
                  ("multi2", "INBOX")]
        msgs = {}
        for i, (user, folder) in enumerate(pushes):
            msgs[(user, folder)] = make_message(
                810000 + i, size=1200, to="%s@remote.test" % user,
                subject="push to %s %s" % (user, folder))
        t0 = time.monotonic()
        for (user, folder), m in msgs.items():
            append_plain(d, user, folder, m)
        p.wait_maildir("multi", 4, timeout=10)
        p.wait_maildir("multi2", 2, timeout=10)
        env.log("3 pushes delivered in %.2fs" % (time.monotonic() - t0))
        assert time.monotonic() - t0 < 8
        assert len(dovecot_logins(d, "multi", tls=True)) == 2, \
            dovecot_logins(d, "multi")
        assert len(dovecot_logins(d, "multi2", tls=True)) == 1, \
            dovecot_logins(d, "multi2")
        assert dm.stop() == 0, dm.tail()
    r = dm.run()
    r.check(h)
    got = delivered(r, "multi")
    assert sorted(f for f, _ in got) == ["INBOX", "INBOX", "Lists/a",
                                         "Lists/a"], got
    assert len(delivered(r, "multi2")) == 2
    wait_postfix_idle(p)
    for user in ("multi", "multi2"):
        ids = maildir_ids(p, user)
        assert len(ids) == len(set(ids)), "duplicates for %s" % user
    folders = []
    for path in p.maildir_files("multi"):
        with open(path, "rb") as f:
            folders.append(haul_origin(strip_prepended(f.read())[0][0])[3])
    assert sorted(folders) == ["INBOX", "INBOX", "Lists/a", "Lists/a"]


# --------------------------------------------------------------------------
# UIDVALIDITY


def test_mailbox_recreated_uidvalidity_change(env):
    """The folder is deleted and recreated (new UIDVALIDITY) holding the
    6 messages already delivered plus 2 new ones: a warning, only the 2
    new ones are delivered (the 6 are matched by Message-ID + size +
    Date and recorded), nothing lost; a third run delivers nothing."""
    d, p, user = env.dovecot, env.postfix, "uvc"
    old = varied_messages(6, user, seed=12, start=900000)
    with d.imap_session(user) as c:
        assert c.create(q("Box"))[0] == "OK"
    d.seed(user, old, folder="Box")
    uv1, map1 = uid_map(d, user, "Box")
    h = new_hauld(env, "uvc", user, keep=True, folders=["Box"])
    r1 = h.run()
    r1.check(h, rcs=(0,))
    assert sorted(delivered_uids(r1)) == sorted(map1)
    p.wait_maildir(user, 6)

    new = [make_message(910000 + i, size=2500, to="%s@remote.test" % user)
           for i in range(2)]
    with d.imap_session(user) as c:
        assert c.delete(q("Box"))[0] == "OK"
        assert c.create(q("Box"))[0] == "OK"
        for m in old[:3] + new[:1] + old[3:] + new[1:]:
            typ, resp = c.append(q("Box"), None, None, m)
            assert typ == "OK", resp
    uv2, map2 = uid_map(d, user, "Box")
    assert uv2 != uv1, "Dovecot kept the UIDVALIDITY"
    assert len(map2) == 8
    r2 = h.run()
    r2.check(h, rcs=(0,))
    assert r2.grep(r"UIDVALIDITY changed from %d to %d" % (uv1, uv2)), \
        r2.tail()
    assert [ln for ln in r2.lines(level="warning")
            if "UIDVALIDITY" in ln["msg"]], "not logged as a warning"
    new_ids = {header(m, "Message-ID") for m in new}
    got = delivered_uids(r2)
    assert sorted(map2[u] for u in got) == sorted(new_ids), \
        "after the UIDVALIDITY change hauld delivered %s" % (
            [map2[u] for u in got])
    assert len(r2.grep(r"was delivered before the UIDVALIDITY change")) \
        == 6, r2.tail()
    p.wait_maildir(user, 8)
    wait_postfix_idle(p)
    time.sleep(0.2)
    ids = maildir_ids(p, user)
    assert len(ids) == 8 and len(set(ids)) == 8, \
        "re-delivery flood or loss: %d copies, %d distinct" % (
            len(ids), len(set(ids)))
    check_delivered(p, user, old + new, "uvc", "Box")
    assert not commands_matching(r2, r"STORE|EXPUNGE|MOVE")
    r3 = h.run()
    r3.check(h, rcs=(0,))
    assert delivered(r3) == []
    assert not r3.grep(r"UIDVALIDITY changed")


@timeout(60)
def test_idled_mailbox_recreated(env):
    """The folder hauld idles on is deleted and recreated with the old
    messages plus a new one: hauld loses the session, reconnects (short
    backoff), warns about the UIDVALIDITY change and delivers only the
    new message; no loss, no flood."""
    d, p, user = env.dovecot, env.postfix, "uvi"
    old = varied_messages(4, user, seed=13, start=920000)
    with d.imap_session(user) as c:
        assert c.create(q("Box"))[0] == "OK"
    d.seed(user, old, folder="Box")
    h = _idle_hauld(env, "uvi", user, folders=["Box"])
    h.delivery_opts.update(retry_min=1, retry_max=2)
    new = make_message(930000, size=3000, to="%s@remote.test" % user)
    with Daemon(h) as dm:
        assert dm.ctl("fetch", "uvi").returncode == 0
        dm.wait(lambda st: st["uvi"]["idle_connected"], "idling on Box")
        p.wait_maildir(user, 4)
        uv1, _ = uid_map(d, user, "Box")
        with d.imap_session(user) as c:
            assert c.delete(q("Box"))[0] == "OK"
            assert c.create(q("Box"))[0] == "OK"
            for m in [old[2], new, old[0], old[3], old[1]]:
                typ, resp = c.append(q("Box"), None, None, m)
                assert typ == "OK", resp
        uv2, map2 = uid_map(d, user, "Box")
        assert uv2 != uv1
        try:
            p.wait_maildir(user, 5, timeout=15)
        except haulfix.FixtureError:
            said = [ln for ln in dm.text().splitlines() if re.search(
                r"imap: S: \* (NO|BAD|BYE)|server warning|UIDVALIDITY|"
                r"connection ended", ln)]
            raise AssertionError(
                "the new message in the recreated folder was not fetched "
                "within 15 s; hauld stayed in IDLE on the deleted "
                "mailbox.  hauld saw:\n%s\nDovecot: %s" % (
                    "\n".join(said[-6:]), "".join(
                        ln for ln in open(d.log_file, errors="replace")
                        if "imap(%s)" % user in ln and "Error" in ln)))
        dm.wait(lambda st: st["uvi"]["idle_connected"], "idling again",
                t=20)
        wait_postfix_idle(p)
        time.sleep(0.5)
        assert dm.stop() == 0, dm.tail()
    r = dm.run()
    r.check(h)
    assert r.grep(r"UIDVALIDITY changed from %d to %d" % (uv1, uv2)), \
        r.tail()
    assert delivered_uids(r)[4:] == [u for u, mid in map2.items()
                                     if mid == header(new, "Message-ID")]
    ids = maildir_ids(p, user)
    assert len(ids) == 5 and len(set(ids)) == 5, ids
    check_delivered(p, user, old + [new], "uvi", "Box")
