# ISC License; see LICENSE.
"""first_fetch (haul.conf(5), docs/imap.md): what the first session of an
IMAP folder the UID store has never seen takes as already delivered.

Against tests/fixtures/fakeimap.py (keep = yes unless said otherwise):

- unseen: the \\Seen messages are recorded (queue id first_fetch), never
  fetched; the others are delivered.  A \\Seen message that arrives after
  the SELECT (here: while hauld asks for the flags) is delivered, because
  only UIDs below the SELECT's UIDNEXT are asked.  The second session
  ignores the option: new mail, \\Seen or not, arrives exactly once.
- new: nothing present at first contact is fetched; later mail is.
- keep = no with first_fetch: what the option recorded is never deleted
  (haul did not deliver it); what haul delivered is.
- SIGKILL at each of the first store commits: first contact starts over
  when it was not durable; \\Seen mail is never delivered, unseen mail is.
- POP3 accounts refuse unseen and new (hauld -n names the key).
"""

import os

import fakeimap
import haulfix
from fakeimap import FakeIMAP, sample_message
from haulfix import timeout
from hauldrun import Hauld, SmtpSink, message_ids
from imaprun import delivered_uids, imap_account

TIMEOUT = 30

USER = "ff"
PW = "First-fetch-pw-Rk29Vq"
SEEN = ("\\Seen",)


def setup_module(env):
    haulfix.need_binaries("smtp-sink")
    env.need("hauld")


class Case:
    """A fake IMAP server with INBOX = msgs [(data, flags)], an
    smtp-sink and a hauld config with first_fetch = mode."""

    def __init__(self, env, name, msgs, mode, **acct):
        self.srv = FakeIMAP({"INBOX": msgs}, users={USER: PW})
        self.sink = SmtpSink(os.path.join(env.tmpdir, name + "-sink")).start()
        self.h = Hauld(env.hauld, os.path.join(env.tmpdir, name))
        self.h.smtp(self.sink.port)
        opts = {"host": "127.0.0.1", "port": self.srv.port, "user": USER,
                "tls": "none", "allow_plaintext": True, "keep": True,
                "deliver_to": ["rcpt@local.test"], "first_fetch": mode,
                "timeout": 5, "connect_timeout": 5}
        opts.update(acct)
        imap_account(self.h, "ff", PW, **opts)

    def run(self):
        r = self.h.run(timeout=20)
        r.check(self.h, rcs=(0,))
        assert not self.srv.errors, self.srv.errors
        return r

    def bodies(self):
        return sorted(set(self.srv.body_fetches("INBOX")))

    def close(self):
        self.sink.stop()
        self.srv.stop()


def msg(i, seen):
    return (sample_message(i, 600), SEEN if seen else ())


class _AppendDuringScan:
    """While installed, the first "UID FETCH .. (UID FLAGS)" a session
    gets adds a \\Seen message first, as another client would: it arrives
    after the SELECT and must not be taken as delivered."""

    def __init__(self, srv, data):
        self.srv, self.data, self.uid = srv, data, None
        self.orig = fakeimap._Session.cmd_FETCH

    def __enter__(self):
        hook = self

        def cmd_FETCH(sess, point, tag, args, uid_mode=False):
            items = sess._fetch_items(args[1]) if len(args) == 2 else []
            if hook.uid is None and uid_mode and "FLAGS" in items and \
                    not any(i.upper().startswith("BODY") for i in items):
                hook.uid = hook.srv.add_message("INBOX", hook.data, SEEN)
            return hook.orig(sess, point, tag, args, uid_mode)
        fakeimap._Session.cmd_FETCH = cmd_FETCH
        return self

    def __exit__(self, *exc):
        fakeimap._Session.cmd_FETCH = self.orig


@timeout(TIMEOUT)
def test_unseen_records_seen_fetches_rest_and_late_arrivals(env):
    # UIDs 1..6: seen, seen, unseen, seen, unseen, seen
    flags = [True, True, False, True, False, True]
    msgs = [msg(i + 1, s) for i, s in enumerate(flags)]
    c = Case(env, "unseen", msgs, "unseen")
    try:
        late = sample_message(7, 600)
        with _AppendDuringScan(c.srv, late) as hook:
            r = c.run()
        assert hook.uid == 7, "the hook did not fire"
        scans = [ln for ln in c.srv.lines("UID FETCH")
                 if b"FLAGS" in ln.raw.upper()]
        assert len(scans) == 1 and b"UID FETCH 1:6 (UID FLAGS)" in \
            scans[0].raw, [ln.raw for ln in scans]
        # the unseen ones and the late \Seen one, nothing else
        assert sorted(delivered_uids(r)) == [3, 5, 7], r.tail()
        assert c.bodies() == [3, 5, 7], c.bodies()
        assert sorted(message_ids(c.sink.dumps())) == sorted(
            message_ids([msgs[2][0], msgs[4][0], late]))
        assert r.grep(r"first contact \(first_fetch = unseen\): 4 "
                      r"messages recorded"), r.tail()
        # keep: nothing flagged or expunged by haul
        assert c.srv.expunged_uids("INBOX") == []
        assert not c.srv.flag_changes("INBOX"), c.srv.flag_changes("INBOX")

        # second session: records exist, the option is ignored
        c.srv.add_message("INBOX", sample_message(8, 600), SEEN)
        c.srv.add_message("INBOX", sample_message(9, 600))
        r2 = c.run()
        assert sorted(delivered_uids(r2)) == [8, 9], r2.tail()
        assert not r2.grep("first contact"), r2.tail()
        assert not [ln for ln in c.srv.lines("UID FETCH", conn=2)
                    if b"(UID FLAGS)" in ln.raw], "flags asked again"
        # a third run delivers nothing at all
        r3 = c.run()
        assert delivered_uids(r3) == [], r3.tail()
        assert len(c.sink.dumps()) == 5
    finally:
        c.close()


@timeout(TIMEOUT)
def test_new_skips_everything_present_at_first_contact(env):
    msgs = [msg(i + 1, i % 2 == 0) for i in range(4)]
    c = Case(env, "new", msgs, "new")
    try:
        with _AppendDuringScan(c.srv, sample_message(5, 600)) as hook:
            r = c.run()
        assert hook.uid == 5
        assert delivered_uids(r) == [5], r.tail()
        assert c.bodies() == [5]
        assert r.grep(r"first_fetch = new\): 4 messages recorded"), r.tail()
        c.srv.add_message("INBOX", sample_message(6, 600))
        r2 = c.run()
        assert delivered_uids(r2) == [6], r2.tail()
        assert len(c.sink.dumps()) == 2
    finally:
        c.close()


@timeout(TIMEOUT)
def test_recorded_messages_are_never_deleted(env):
    """keep = no deletes what haul delivered, never what first_fetch
    recorded without delivering it."""
    msgs = [msg(1, True), msg(2, False), msg(3, True)]
    c = Case(env, "nokeep", msgs, "unseen", keep=False)
    try:
        r = c.run()
        assert delivered_uids(r) == [2], r.tail()
        assert c.srv.expunged_uids("INBOX") == [2]
        c.srv.add_message("INBOX", sample_message(4, 600), SEEN)
        r2 = c.run()
        assert delivered_uids(r2) == [4], r2.tail()
        assert c.srv.expunged_uids("INBOX") == [2, 4]
        assert c.srv.remaining_uids("INBOX") == [1, 3]
    finally:
        c.close()


@timeout(TIMEOUT)
def test_killed_during_first_contact_starts_over(env):
    """SIGKILL at the 1st..3rd store commit (HAUL_FAULT_STORE, test
    builds): a kill before first contact is durable makes the rerun start
    it over; no \\Seen message is ever delivered, every unseen one is
    (twice at most: once more if the kill beat the record of its
    delivery)."""
    with open(env.hauld, "rb") as f:
        if b"HAUL_FAULT_STORE" not in f.read():
            raise haulfix.Skip("hauld is not a test build (TEST_HOOKS=1)")
    flags = [True, False, True, False]
    redone = 0
    for n in (1, 2, 3):
        msgs = [msg(i + 1, s) for i, s in enumerate(flags)]
        c = Case(env, "kill%d" % n, msgs, "unseen")
        try:
            r1 = c.h.run(timeout=20, env=dict(
                os.environ, HAUL_FAULT_STORE="commit:kill:%d" % n))
            assert not r1.timed_out, r1.tail()
            r2 = c.run()
            assert r1.rc < 0, "commit %d: not killed\n%s" % (n, r1.tail())
            redone += bool(r2.grep("first contact"))
            got = delivered_uids(r1) + delivered_uids(r2)
            assert set(got) == {2, 4}, (n, got, r1.tail(), r2.tail())
            assert 1 not in c.bodies() and 3 not in c.bodies()
            assert r1.grep("first contact") or r2.grep("first contact")
            assert delivered_uids(c.run()) == []
        finally:
            c.close()
    assert redone, "no kill fell before first contact was durable"


@timeout(TIMEOUT)
def test_pop3_refuses_first_fetch(env):
    h = Hauld(env.hauld, os.path.join(env.tmpdir, "pop3"))
    h.smtp(2525)
    acct = {"host": "127.0.0.1", "user": "u",
            "deliver_to": ["rcpt@local.test"]}
    for mode in ("unseen", "new"):
        h.account("p", password="x-pw-unused-1", first_fetch=mode, **acct)
        rc, out = h.check_config()
        assert rc != 0 and "first_fetch is only for protocol = imap" in \
            out, out
    h.account("p", password="x-pw-unused-1", first_fetch="all", **acct)
    rc, out = h.check_config()
    assert rc == 0, out
