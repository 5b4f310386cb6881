# ISC License; see LICENSE.
"""hauld against a misbehaving IMAP server (tests/fixtures/fakeimap.py),
reliability.md 4.2: M1-M5 (STARTTLS and PREAUTH), M11 (oversized
literals), M12 (literal size lies), M14/M15 (NUL, bare LF/CR), M16 (long
line), M18 (EXISTS 4294967295, EXPUNGE 0), M20 (BODY[] NIL, FETCH for UIDs
not asked, FETCH without UID), M21 (no UIDVALIDITY), M24/M25 (UIDVALIDITY
changes between and within sessions), M30 (EXPUNGE during UID FETCH), M36
(BYE mid-FETCH and mid-literal), M37 (IDLE without "+", DONE ignored),
plus servers without UIDPLUS, MOVE or IDLE.

The expected outcome everywhere: abort that session, deliver nothing
partial, lose nothing, no crash (exit 0/1, never a signal), no credential
before TLS; and a later run against a sane server delivers every message
exactly once (I1, I2), with nothing removed from the server that was not
delivered (I4).
"""

import os
import re
import time

import fakepki
import haulfix
from fakeimap import FakeIMAP, sample_message, sample_messages
from haulfix import timeout
from hauldrun import Hauld, SmtpSink, header, message_ids
from imaprun import (Daemon, commands_matching, delivered, delivered_uids,
                     expected_form, folder_ends, haul_origin, imap_account,
                     need_test_hooks, sink_payload, strip_prepended)

TIMEOUT = 40

USER = "fetcher"
PW = "Fi-pw-8Kq2mZr4Tv"


def setup_module(env):
    haulfix.need_root()
    haulfix.need_binaries("smtp-sink", "openssl")
    env.need("hauld", "haulctl")
    env.pki = fakepki.make_pki(os.path.join(env.tmpdir, "pki"))


# --------------------------------------------------------------------------
# helpers


class Case:
    """One test's fake IMAP server, smtp-sink and hauld config (a context
    manager).  msgs: INBOX's messages (UIDs 1..n)."""

    def __init__(self, env, messages=None, n=3, tls="implicit", keep=False,
                 account=None, mailboxes=None, **faults):
        self.env = env
        self.msgs = list(messages if messages is not None
                         else sample_messages(n, 700))
        boxes = dict(mailboxes or {})
        boxes["INBOX"] = self.msgs
        kw = {}
        if tls:
            kw = {"tls": tls, "certfile": env.pki.cert,
                  "keyfile": env.pki.key}
        self.srv = FakeIMAP(boxes, users={USER: PW}, **kw, **faults)
        self.sink = SmtpSink(os.path.join(env.tmpdir, "sink")).start()
        self.h = Hauld(env.hauld, os.path.join(env.tmpdir, "hauld"))
        self.h.smtp(self.sink.port)
        opts = {"host": "localhost", "port": self.srv.port, "user": USER,
                "keep": keep, "deliver_to": ["rcpt@local.test"],
                "timeout": 5}
        if tls:
            opts.update(tls=tls, ca_file=env.pki.ca_cert)
        else:
            opts.update(tls="none", allow_plaintext=True)
        opts.update(account or {})
        imap_account(self.h, "fake", PW, **opts)
        self.runs = []

    def run(self, rcs=(0, 1), timeout=20, env=None):
        r = self.h.run(timeout=timeout, env=env)
        self.runs.append(r)
        r.check(self.h, rcs=rcs)
        if self.srv.tls_mode is not None:
            assert not self.srv.saw_credentials_before_tls(), \
                "credentials sent before TLS:\n" + self.srv.dump()
        assert not self.srv.errors, self.srv.errors
        return r

    def ids(self, idx=None):
        """Message-IDs of the messages (1-based numbers idx)."""
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


def assert_each_once(got, want, what="the sink"):
    dup = sorted({m for m in got if got.count(m) > 1})
    assert not dup, "delivered more than once to %s: %s" % (what, dup)
    assert sorted(got) == sorted(want), \
        "%s got %s, expected exactly %s" % (what, sorted(got), sorted(want))


def assert_intact(c, originals=None, uids=None):
    """No partial, forged or mis-attributed delivery: every dump is one
    original byte for byte (as hauld passes it on) and haul's Received
    names the UID the server gave that message (uids: {Message-ID: uid},
    default INBOX's 1..n)."""
    originals = originals if originals is not None else c.msgs
    by_id = {header(m, "Message-ID"): m for m in originals}
    if uids is None:
        uids = {header(m, "Message-ID"): i + 1 for i, m in
                enumerate(c.msgs)}
    for d in c.sink.dumps():
        rcvd, tok, _ = strip_prepended(d)
        rest = sink_payload(d)
        mid = header(rest, "Message-ID")
        assert mid in by_id, "delivered a message that is not one of the " \
            "originals (forged or mangled), Message-ID %r:\n%r" % (
                mid, rest[:400])
        want = expected_form(by_id[mid])
        assert rest == want, "message %s delivered altered or truncated " \
            "(%d bytes, want %d):\n%r" % (mid, len(rest), len(want),
                                          rest[-200:])
        assert len(rcvd) == 1, rcvd
        uid = haul_origin(rcvd[0])[4]
        if mid in uids:
            assert int(uid) == uids[mid], \
                "message %s (server UID %d) delivered as uid %s" % (
                    mid, uids[mid], uid)


def assert_removed_only_delivered(c, folder="INBOX"):
    """I1/I4: every UID a client removed from the server was delivered
    (intact) in some run before."""
    done = set()
    for r in c.runs:
        done |= set(delivered_uids(r, folder=folder))
    bad = set(c.srv.expunged_uids(folder)) - done
    assert not bad, "removed from the server but never delivered: %s" % (
        sorted(bad),)


def assert_all_on_server(c, what=""):
    assert c.srv.remaining_uids() == list(range(1, len(c.msgs) + 1)), \
        "%s: left on the server %s (expunged %s)\n%s" % (
            what, c.srv.remaining_uids(), c.srv.expunged_uids(),
            c.srv.dump())


def recovers(c, keep=False):
    """Clear the faults: the next run delivers every message exactly
    once over all runs, intact; keep=no empties the folder."""
    c.srv.clear_faults()
    r = c.run(rcs=(0,))
    assert_each_once(c.got(), c.ids(), "the sink (after recovery)")
    assert_intact(c)
    assert_removed_only_delivered(c)
    if not keep:
        assert c.srv.remaining_uids() == [], \
            "keep=no left %s on the server" % c.srv.remaining_uids()
    return r


def refused(c, reason, creds=False):
    """Run once: exit 1 naming reason, nothing delivered or removed, no
    credential at all unless creds (and never in the clear)."""
    r = c.run(rcs=(1,))
    assert r.grep(reason), "log does not name %r:\n%s" % (reason, r.tail())
    assert c.sink.dumps() == [] and delivered(r) == []
    if not creds:
        sent = c.srv.lines("LOGIN") + c.srv.lines("AUTHENTICATE")
        assert not sent, "credentials sent:\n" + c.srv.dump()
    assert not c.srv.saw_before_tls(PW), c.srv.dump()
    assert not c.srv.lines("SELECT") and not c.srv.lines("EXAMINE"), \
        c.srv.dump()
    assert_all_on_server(c)
    return r


# --------------------------------------------------------------------------
# TLS, STARTTLS, greeting, authentication (M1-M5)


def test_starttls_missing(env):
    """M1: tls=starttls, STARTTLS not advertised: abort before any
    credential."""
    with Case(env, tls="starttls", no_starttls=True) as c:
        refused(c, r"tls error.*STARTTLS")


def test_starttls_refused_no(env):
    """M2: STARTTLS answered NO."""
    with Case(env, tls="starttls", starttls_err=True) as c:
        refused(c, r"tls error")


def test_starttls_refused_bad(env):
    """M2: STARTTLS answered BAD."""
    with Case(env, tls="starttls",
              starttls_err={"cond": "BAD", "text": "no TLS here"}) as c:
        refused(c, r"tls error")


def test_preauth_on_cleartext_aborts(env):
    """M3 (CVE-2021-39272): PREAUTH greeting on a link that must do
    STARTTLS: abort before sending anything."""
    with Case(env, tls="starttls", preauth=True) as c:
        r = refused(c, r"tls error.*PREAUTH")
        assert c.srv.commands() == [], "hauld talked to a PREAUTH server " \
            "in the clear:\n" + c.srv.dump()
        assert r.elapsed < 4


def test_preauth_under_implicit_tls_is_used(env):
    """PREAUTH under implicit TLS is legitimate: no credential sent, the
    mail is fetched."""
    with Case(env, tls="implicit", preauth=USER) as c:
        c.run(rcs=(0,))
        assert not c.srv.lines("LOGIN") and not c.srv.lines("AUTHENTICATE")
        assert_each_once(c.got(), c.ids())
        assert_intact(c)


def test_bytes_injected_after_starttls_ok(env):
    """M4 (CVE-2020-14954 class): a tagged OK injected in the same
    segment as the STARTTLS OK: abort; the injected response is never
    used, no credential goes out."""
    inj = b"h2 OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] Logged in\r\n"
    with Case(env, tls="starttls", inject_after_starttls=inj) as c:
        r = refused(c, r"tls error.*(inject|octets after)")
        assert c.srv.commands() == ["STARTTLS"], c.srv.commands()
        assert r.elapsed < 4


def test_pre_tls_capabilities_discarded(env):
    """M5: before TLS the server offers AUTH=PLAIN; after TLS only
    LOGIN: hauld asks CAPABILITY again after TLS and chooses from that
    list (LOGIN, not AUTHENTICATE PLAIN)."""
    caps = {"pre_tls": ["IMAP4rev1", "STARTTLS", "AUTH=PLAIN", "SASL-IR",
                        "IDLE"],
            "pre_auth": ["IMAP4rev1", "IDLE", "LITERAL+"]}
    with Case(env, tls="starttls", capabilities=caps,
              greeting="* OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] "
                       "hi\r\n") as c:
        c.run(rcs=(0,))
        cmds = c.srv.commands()
        i = cmds.index("STARTTLS")
        assert "CAPABILITY" in cmds[i + 1:i + 2], \
            "no CAPABILITY right after STARTTLS: %s" % cmds
        assert "LOGIN" in cmds and "AUTHENTICATE" not in cmds, \
            "the mechanism came from the pre-TLS list: %s" % cmds
        assert c.srv.lines("LOGIN")[0].tls
        assert_each_once(c.got(), c.ids())


def test_authenticationfailed_is_credential_error(env):
    """NO [AUTHENTICATIONFAILED]: the credential alert, exit 1, no
    mail."""
    with Case(env, auth_fail_code="[AUTHENTICATIONFAILED]") as c:
        r = refused(c, r"refused the credentials", creds=True)
        assert not r.grep(r"temporary error")


def test_unavailable_is_temporary(env):
    """NO [UNAVAILABLE] to the login: temporary, not a credential alert
    (no account lock storm)."""
    with Case(env, auth_fail_code="[UNAVAILABLE]") as c:
        r = refused(c, r"temporary error", creds=True)
        assert not r.grep(r"refused the credentials")


def test_long_greeting_line(env):
    """M16: a 100 kB greeting with no CRLF: the line cap aborts at once
    (not the timeout)."""
    with Case(env, long_line=100000) as c:
        r = refused(c, r"protocol error")
        assert r.elapsed < 4, "took %.1fs" % r.elapsed


# --------------------------------------------------------------------------
# literals (M11, M12, M36)


def _literal_huge(env, size):
    """M11: UID 2's body literal declares `size` octets: protocol error
    at once (no allocation, no waiting for the octets); after the server
    recovers, UID 2 (495 octets in the listing) is delivered."""
    with Case(env, literal_huge={2: size}) as c:
        r = c.run(rcs=(1,))
        assert r.elapsed < 4, "took %.1fs: waited for the literal" % \
            r.elapsed
        assert r.grep(r"protocol error"), r.tail()
        assert c.ids([2])[0] not in c.got()
        assert_intact(c)
        assert_removed_only_delivered(c)
        recovers(c)


def test_literal_4294967296(env):
    _literal_huge(env, "4294967296")


def test_literal_2_63_minus_1(env):
    _literal_huge(env, "9223372036854775807")


def test_literal_overflowing_digits(env):
    _literal_huge(env, "99999999999999999999")


def test_literal_minus_one(env):
    _literal_huge(env, "-1")


def test_literal_declares_more_than_sent(env):
    """M12: UID 2's literal declares the real size, 10 octets come, then
    FIN: nothing of UID 2 delivered; recovers."""
    with Case(env, literal_short=2) as c:
        c.run(rcs=(1,))
        assert c.ids([2])[0] not in c.got(), "a truncated copy delivered"
        assert_intact(c)
        assert_removed_only_delivered(c)
        recovers(c)


def test_literal_declares_fewer_than_sent(env):
    """M12: UID 2's literal declares 10 octets, the whole message
    follows: the excess is parsed as protocol and fails; the 10-octet
    prefix is not delivered as a message; no desync into trusted
    state."""
    with Case(env, literal_long=2) as c:
        r = c.run(rcs=(1,))
        assert r.grep(r"protocol error"), r.tail()
        assert len(c.sink.dumps()) == len(c.got())
        assert c.ids([2])[0] not in c.got()
        assert_intact(c)
        assert_removed_only_delivered(c)
        recovers(c)


def test_bye_mid_literal(env):
    """M36: half of UID 2's literal, then '* BYE' and FIN: not delivered;
    recovers."""
    with Case(env, bye_mid_literal=2) as c:
        c.run(rcs=(1,))
        assert c.ids([2])[0] not in c.got()
        assert_intact(c)
        assert_removed_only_delivered(c)
        recovers(c)


def test_bye_instead_of_fetch(env):
    """M36: '* BYE' instead of UID 2's FETCH response: temporary error,
    UID 2 not delivered; recovers."""
    with Case(env, bye_at_fetch=2) as c:
        r = c.run(rcs=(1,))
        assert r.grep(r"temporary error"), r.tail()
        assert c.ids([2])[0] not in c.got()
        assert_intact(c)
        assert_removed_only_delivered(c)
        recovers(c)


def test_truncated_tls_mid_session_not_called_handshake_failure(env):
    """M10: the TLS stream ends (no close_notify) in the middle of a
    literal, long after the handshake: the log must not blame a 'TLS
    handshake' (operators would chase certificates)."""
    with Case(env, literal_short=2) as c:
        r = c.run(rcs=(1,))
        bad = r.grep(r"handshake failed")
        assert not bad, "mid-session truncation reported as a handshake " \
            "failure:\n%s" % "\n".join(bad)


# --------------------------------------------------------------------------
# message data (M14, M15, M19)


def test_nul_in_body_not_truncated(env):
    """M14: NUL octets in a body: delivered whole (no truncation at the
    NUL) or refused; never cut."""
    msgs = [b"From: a@remote.test\r\nSubject: nul\r\nMessage-ID: "
            b"<nul%d@remote.test>\r\n\r\nbefore\0after the NUL %d\r\n"
            b"last line %d\r\n" % (i, i, i) for i in range(2)] + \
        sample_messages(1, 600)
    with Case(env, messages=msgs) as c:
        r = c.run()
        for d in c.sink.dumps():
            if b"<nul" in d:
                assert b"before\0after the NUL" in d and b"last line" in d, \
                    "NUL message truncated or altered:\n%r" % d[-200:]
        assert_removed_only_delivered(c)
        assert header(msgs[2], "Message-ID") in c.got(), \
            "a NUL message stopped the others"
        nul_done = [u for u in delivered_uids(r) if u in (1, 2)]
        assert not nul_done or r.grep(r"NUL"), \
            "NUL octets delivered without an operator-visible record"
        assert set(c.srv.remaining_uids()) | set(delivered_uids(r)) == \
            {1, 2, 3}


def test_bare_lf_and_cr_bodies(env):
    """M15: bare LF, "\\n.\\n" and a fake SMTP transaction after it, and
    bare CR: one message each reaches the MTA, whole, no smuggled
    transaction."""
    smuggle = (b"before\n.\nMAIL FROM:<evil@smuggle.test>\nRCPT TO:"
               b"<victim@local.test>\nDATA\nSubject: SMUGGLED\n\nowned\n"
               b".\nafter the dot\r\n")
    msgs = [b"From: a@remote.test\r\nSubject: lf\r\nMessage-ID: "
            b"<lf@remote.test>\r\n\r\n" + smuggle,
            b"From: a@remote.test\r\nSubject: cr\r\nMessage-ID: "
            b"<cr@remote.test>\r\n\r\nbefore\r.\rMAIL FROM:<evil2@"
            b"smuggle.test>\rend\r\n"]
    with Case(env, messages=msgs) as c:
        c.run(rcs=(0,))
        dumps = c.sink.dumps()
        assert_each_once(c.got(), c.ids())
        for d in dumps:
            assert b"X-Mail-Args: <evil" not in d, "smuggled:\n%r" % d
            if b"<lf@" in d:
                assert b"\nowned\n.\nafter the dot\n" in d, d
        assert_removed_only_delivered(c)


def test_odd_messages(env):
    """M19: an empty message, one without headers, one without a final
    CRLF: no crash, each delivered once or left on the server."""
    msgs = [b"", b"no header line at all, and no line end",
            b"Subject: no final CRLF\r\nMessage-ID: <nofinal@remote.test>"
            b"\r\n\r\nlast line without CRLF"]
    with Case(env, messages=msgs) as c:
        r = c.run()
        n = len(delivered(r))
        assert len(c.sink.dumps()) == n
        assert n + len(c.srv.remaining_uids()) >= 3
        for d in c.sink.dumps():
            if b"nofinal@" in d:
                assert b"last line without CRLF" in d
        assert_removed_only_delivered(c)
        r2 = c.run()
        assert len(c.sink.dumps()) == n + len(delivered(r2)) and \
            not set(delivered_uids(r)) & set(delivered_uids(r2)), \
            "a message was delivered twice"


# --------------------------------------------------------------------------
# mailbox data (M18, M20, M21, M30)


def test_exists_4294967295(env):
    """M18: '* 4294967295 EXISTS' in the SELECT response: protocol error,
    nothing fetched or removed."""
    with Case(env, exists_value=4294967295) as c:
        r = c.run(rcs=(1,))
        assert r.grep(r"protocol error"), r.tail()
        assert not c.srv.lines("UID FETCH") and c.sink.dumps() == []
        assert_all_on_server(c)
        recovers(c)


def test_expunge_zero(env):
    """M18: '* 0 EXPUNGE': protocol error."""
    with Case(env, garbage={"at": "SELECT", "data": b"* 0 EXPUNGE\r\n",
                            "mode": "before"}) as c:
        r = c.run(rcs=(1,))
        assert r.grep(r"protocol error"), r.tail()
        assert_all_on_server(c)
        recovers(c)


def test_fetch_beyond_exists(env):
    """M18: a FETCH for a sequence number above EXISTS: protocol error,
    nothing attributed from it."""
    with Case(env, garbage={"at": "SELECT", "data": b"* 9 FETCH (UID 9 "
                            b"FLAGS ())\r\n", "mode": "after"}) as c:
        r = c.run(rcs=(1,))
        assert r.grep(r"protocol error"), r.tail()
        assert_all_on_server(c)
        recovers(c)


def test_no_uidvalidity(env):
    """M21: SELECT without [UIDVALIDITY]: protocol error, no UID
    trusted."""
    with Case(env, no_uidvalidity=True) as c:
        r = c.run(rcs=(1,))
        assert r.grep(r"protocol error.*UIDVALIDITY"), r.tail()
        assert not c.srv.lines("UID FETCH")
        recovers(c)


def test_body_nil(env):
    """M20: '* 2 FETCH (UID 2 BODY[] NIL)': UID 2 is not delivered (no
    empty message) nor removed; 1 and 3 are; next run delivers 2."""
    with Case(env, body_nil=2) as c:
        r = c.run()
        assert_each_once(c.got(), c.ids([1, 3]))
        assert_intact(c)
        assert c.srv.remaining_uids() == [2]
        assert r.grep(r"NIL"), r.tail()
        recovers(c)


def test_fetch_unasked_for_a_real_uid(env):
    """M20: while UID 1 is fetched the server also sends UID 3's body:
    nothing mis-attributed, each message once (3 is not delivered twice
    nor as UID 1)."""
    with Case(env, fetch_unasked={1: 3}) as c:
        c.run()
        assert_intact(c)
        assert_each_once(c.got(), [m for m in c.got()])
        assert_removed_only_delivered(c)
        recovers(c)


def test_fetch_unasked_forged_uid(env):
    """M20: a body under a UID that does not exist (and UID 2's sequence
    number): the forged message is never delivered, UID 2 is never
    given another's body."""
    with Case(env, fetch_unasked={2: True}) as c:
        c.run()
        assert "<unasked-100002@fakeimap.test>" not in c.got(), \
            "a forged, unasked-for body was delivered"
        assert_intact(c)
        assert_removed_only_delivered(c)
        recovers(c)


def test_fetch_without_uid_item(env):
    """M20: UID 2's FETCH response lacks the UID item: handled (by its
    sequence number) or refused; never mis-attributed, nothing lost."""
    with Case(env, fetch_no_uid=2) as c:
        c.run()
        assert_intact(c)
        assert_removed_only_delivered(c)
        recovers(c)


def test_expunge_during_uid_fetch(env):
    """M30: another client expunges UID 1 (already fetched) while UID 2
    is fetched: '* 1 EXPUNGE' precedes UID 2's FETCH, which carries the
    shifted sequence number; every message is attributed to its own UID;
    the actions hit the right UIDs."""
    with Case(env, n=4, expunge_during_fetch={2: 1}) as c:
        r = c.run(rcs=(0,))
        assert_each_once(c.got(), c.ids())
        assert_intact(c)
        assert sorted(c.srv.expunged_uids()) == [2, 3, 4], \
            c.srv.expunged_uids()
        assert c.srv.remaining_uids() == []
        assert_removed_only_delivered(c)
        assert sorted(delivered_uids(r)) == [1, 2, 3, 4]


def test_expunge_of_a_message_not_yet_fetched(env):
    """M30: UID 3 is expunged by someone else while UID 1 is fetched:
    UID 3 is reported gone (not an error, not a loss by hauld); 1 and 2
    delivered and removed."""
    with Case(env, n=3, expunge_during_fetch={1: 3}) as c:
        r = c.run(rcs=(0,))
        assert_each_once(c.got(), c.ids([1, 2]))
        assert_intact(c)
        assert c.srv.remaining_uids() == []
        assert folder_ends(r)[0]["error"] is None


# --------------------------------------------------------------------------
# UIDVALIDITY (M24, M25)


def test_uidvalidity_change_between_sessions_keep(env):
    """M24, keep=yes: the folder's UIDVALIDITY changes (same messages,
    UIDs renumbered) and a new message arrives: only the new one is
    delivered; the others are matched, not re-delivered; nothing is
    changed on the server."""
    with Case(env, n=4, keep=True) as c:
        c.run(rcs=(0,))
        assert_each_once(c.got(), c.ids())
        uv0 = c.srv.folder_info()[0]
        # renumbered as by a rebuilt index: 1..4 -> 1..4 in another
        # order, then the new message
        c.srv.recreate_folder("INBOX", [c.msgs[2], c.msgs[0], c.msgs[3],
                                        c.msgs[1]])
        new = sample_message(9, 650)
        c.srv.add_message("INBOX", new)
        uv1 = c.srv.folder_info()[0]
        r = c.run(rcs=(0,))
        assert r.grep(r"UIDVALIDITY changed from %d to %d" % (uv0, uv1))
        assert_each_once(c.got(), c.ids() + [header(new, "Message-ID")])
        assert delivered_uids(r) == [5], delivered(r)
        assert not commands_matching(r, r"STORE|EXPUNGE|MOVE|COPY")
        assert c.srv.flag_changes() == []
        r3 = c.run(rcs=(0,))
        assert delivered(r3) == []


def test_uidvalidity_change_between_sessions_delete(env):
    """M24, keep=no: run 1 leaves UID 3 on the server (NO to its fetch);
    then the UIDVALIDITY changes and UIDs are renumbered (old UID 3 is
    now UID 1, a new message is UID 2): no delete based on a stale UID
    (old UID 1 and 2 mean other messages now); both are delivered once
    and removed."""
    with Case(env, n=3, fetch_no={3: "[UNAVAILABLE] try later"}) as c:
        c.run()
        assert_each_once(c.got(), c.ids([1, 2]))
        assert c.srv.remaining_uids() == [3]
        c.srv.clear_faults()
        new = sample_message(8, 640)
        c.srv.recreate_folder("INBOX", [c.msgs[2], new])
        before = len(c.srv.expunges())
        r = c.run(rcs=(0,))
        assert r.grep(r"UIDVALIDITY changed")
        assert_each_once(c.got(), c.ids() + [header(new, "Message-ID")])
        exp = c.srv.expunges()[before:]
        assert sorted(e.uid for e in exp) == [1, 2], exp
        assert c.srv.remaining_uids() == []
        assert sorted(delivered_uids(r)) == [1, 2]


# --------------------------------------------------------------------------
# server extensions: UIDPLUS, MOVE


def test_no_uidplus_delete_refused(env):
    """keep=no on a server without UIDPLUS (allow_expunge_all unset):
    delivered once, never a bare EXPUNGE (it would also expunge other
    clients' \\Deleted messages), mail stays on the server; the next
    run delivers nothing again."""
    with Case(env, no_uidplus=True) as c:
        c.srv.set_flags("INBOX", 3, ["\\Deleted"])   # another client's
        r = c.run()
        assert_each_once(c.got(), c.ids())
        assert not c.srv.lines("EXPUNGE") and not c.srv.lines(
            "UID EXPUNGE"), c.srv.commands()
        assert c.srv.remaining_uids() == [1, 2, 3]
        assert r.grep(r"UIDPLUS")
        r2 = c.run()
        assert delivered(r2) == []
        assert_each_once(c.got(), c.ids())
        assert not c.srv.lines("EXPUNGE")


def test_no_uidplus_allow_expunge_all(env):
    """Without UIDPLUS but allow_expunge_all = yes: STORE \\Deleted then
    EXPUNGE; everything delivered once and removed."""
    with Case(env, no_uidplus=True,
              account={"allow_expunge_all": True}) as c:
        c.run(rcs=(0,))
        assert_each_once(c.got(), c.ids())
        assert c.srv.lines("EXPUNGE") and not c.srv.lines("UID EXPUNGE")
        assert c.srv.remaining_uids() == []
        assert_removed_only_delivered(c)


def test_move_without_move_extension(env):
    """move_to on a server without MOVE: UID COPY then \\Deleted + UID
    EXPUNGE; Archive holds every message once, INBOX ends empty."""
    with Case(env, no_move=True, mailboxes={"Archive": []},
              account={"move_to": "Archive"}) as c:
        c.run(rcs=(0,))
        assert_each_once(c.got(), c.ids())
        assert c.srv.lines("UID COPY") and not c.srv.lines("UID MOVE")
        assert c.srv.remaining_uids() == []
        assert sorted(c.srv.remaining("Archive")) == sorted(c.msgs)
        assert_removed_only_delivered(c)


def test_move_to_missing_folder(env):
    """move_to a folder that does not exist: NO [TRYCREATE]: the mail
    stays in INBOX (not lost), delivered once; the next run does not
    deliver it again."""
    with Case(env, account={"move_to": "Nowhere"}) as c:
        r = c.run()
        assert_each_once(c.got(), c.ids())
        assert c.srv.remaining_uids() == [1, 2, 3]
        assert r.grep(r"refused to move"), r.tail()
        r2 = c.run()
        assert delivered(r2) == []
        assert_each_once(c.got(), c.ids())


def test_one_failing_account_does_not_stop_another(env):
    """I6: account 'bad' hits an oversized literal; account 'good' (its
    own server) is fetched in the same run."""
    with Case(env, literal_huge={1: "4294967296"}) as c:
        good = FakeIMAP(sample_messages(4, 800, folder="good"),
                        users={USER: PW}, tls="implicit",
                        certfile=env.pki.cert, keyfile=env.pki.key)
        try:
            imap_account(c.h, "good", PW, host="localhost", port=good.port,
                         user=USER, tls="implicit",
                         ca_file=env.pki.ca_cert, keep=False,
                         deliver_to=["rcpt@local.test"])
            r = c.run(rcs=(1,))
            assert_each_once(c.got(), message_ids(sample_messages(
                4, 800, folder="good")))
            assert good.remaining_uids() == []
            assert folder_ends(r, "good")[0]["error"] is None
            assert folder_ends(r, "fake")[0]["error"]
        finally:
            good.stop()


def test_oneshot_one_pass_per_folder_no_idle(env):
    """hauld -1 with idle = yes and an IDLE server: one pass per folder
    (one connection each, up to max_connections), never IDLE, exit 0 at
    once."""
    boxes = {"Lists/a": sample_messages(2, folder="Lists/a")}
    with Case(env, keep=True, mailboxes=boxes,
              account={"idle": True, "folders": ["INBOX", "Lists/a"],
                       "max_connections": 2}) as c:
        r = c.run(rcs=(0,))
        assert r.elapsed < 4, "took %.1fs" % r.elapsed
        assert not c.srv.lines("IDLE"), "hauld -1 sent IDLE"
        assert c.srv.connections == 2
        assert sorted(delivered(r)) == [("INBOX", 1), ("INBOX", 2),
                                        ("INBOX", 3), ("Lists/a", 1),
                                        ("Lists/a", 2)]
        assert all(s.logout_received for s in c.srv.sessions)
        assert [n for s in c.srv.sessions for _, n in s.selects] in (
            ["INBOX", "Lists/a"], ["Lists/a", "INBOX"])
        assert len(folder_ends(r)) == 2


# --------------------------------------------------------------------------
# IDLE (daemon)


def _daemon_case(env, **kw):
    kw.setdefault("keep", True)
    acct = {"idle": True, "poll_interval": 3600}
    acct.update(kw.pop("account", {}))
    c = Case(env, account=acct, **kw)
    c.h.delivery_opts.update(retry_min=1, retry_max=2)
    c.h.global_opts["control_socket"] = os.path.join(c.h.dir, "ctl.sock")
    return c


def _start(c):
    d = Daemon(c.h)
    assert d.ctl("fetch", "fake").returncode == 0
    return d


@timeout(30)
def test_idle_push_same_connection(env):
    """idle=yes: hauld idles after catching up; add_message pushes
    '* 4 EXISTS' and the message reaches the MTA within 2 s on the same
    connection; IDLE is entered again."""
    with _daemon_case(env) as c, _start(c) as d:
        d.wait(lambda st: st["fake"]["idle_connected"], "idle_connected")
        assert c.srv.wait_idling(1, "INBOX")
        assert len(c.sink.dumps()) == 3
        new = sample_message(4, 700)
        t0 = time.monotonic()
        c.srv.add_message("INBOX", new)
        assert c.srv.wait_for(lambda: len(c.sink.dumps()) == 4, 5), \
            d.tail()
        env.log("EXISTS -> MTA: %.3fs" % (time.monotonic() - t0))
        assert time.monotonic() - t0 < 2
        assert c.srv.wait_idling(1, "INBOX"), "IDLE not re-entered"
        assert c.srv.connections == 1, "reconnected instead of idling"
        assert c.srv.sessions[0].idle_count == 2
        assert [ln.raw for ln in c.srv.lines(kinds=("done",))] == [b"DONE"]
        assert d.stop() == 0, d.tail()
        c.runs.append(d.run())
        assert_each_once(c.got(), c.ids() + [header(new, "Message-ID")])
        assert c.srv.flag_changes() == []


@timeout(30)
def test_idle_one_connection_per_folder_up_to_max(env):
    """folders INBOX, a, b with max_connections = 2: two connections,
    INBOX idles, the other polls a and b (no IDLE); a message added to
    INBOX is pushed."""
    boxes = {"a": sample_messages(1, folder="a"),
             "b": sample_messages(1, folder="b")}
    with _daemon_case(env, mailboxes=boxes,
                      account={"folders": ["INBOX", "a", "b"],
                               "max_connections": 2}) as c, \
            _start(c) as d:
        assert c.srv.wait_idling(1, "INBOX"), d.tail()
        assert c.srv.wait_for(lambda: len(c.sink.dumps()) == 5, 5)
        time.sleep(0.3)
        assert c.srv.connections == 2, c.srv.connections
        assert len(c.srv.idling()) == 1 and not c.srv.idling("a") and \
            not c.srv.idling("b")
        polled = [s for s in c.srv.sessions if s.selected != "INBOX"]
        assert len(polled) == 1 and [n for _, n in polled[0].selects] == \
            ["a", "b"], c.srv.sessions
        c.srv.add_message("INBOX", sample_message(7))
        assert c.srv.wait_for(lambda: len(c.sink.dumps()) == 6, 5)
        assert d.stop() == 0


@timeout(30)
def test_idle_refresh_before_29_minutes(env):
    """RFC 2177: the default idle_refresh (1740 s, jittered down by up to
    10 %) with the test builds' timer scale (1000x): hauld leaves IDLE
    with DONE, SELECTs the folder again and idles again on the same
    connection, between 1.57 and 1.74 s (scaled 1566..1740 s)."""
    need_test_hooks(env.hauld)
    with _daemon_case(env) as c:
        with Daemon(c.h, env=dict(os.environ,
                                  HAUL_TEST_TIME_SCALE="1000")) as d:
            assert d.ctl("fetch", "fake").returncode == 0
            assert c.srv.wait_idling(1, "INBOX"), d.tail()
            t0 = time.monotonic()
            assert c.srv.wait_for(
                lambda: c.srv.sessions[0].idle_count >= 2, 5), d.tail()
            took = time.monotonic() - t0
            env.log("IDLE refreshed after %.3fs (scaled)" % took)
            assert 1.3 < took < 1.9, took
            assert c.srv.connections == 1, "refresh must not reconnect"
            assert [ln.raw for ln in c.srv.lines(kinds=("done",))] == \
                [b"DONE"]
            assert [n for _, n in c.srv.sessions[0].selects] == \
                ["INBOX", "INBOX"], "re-SELECT at the refresh"
            assert len(c.sink.dumps()) == 3, "nothing delivered twice"
            assert d.stop() == 0


@timeout(30)
def test_no_idle_capability_polls(env):
    """idle=yes but no IDLE capability: fetch, LOGOUT, poll later (no
    IDLE command, not idle_connected)."""
    with _daemon_case(env, no_idle=True) as c, _start(c) as d:
        assert c.srv.wait_for(lambda: len(c.sink.dumps()) == 3, 5)
        assert c.srv.wait_idle(5), "connection kept open without IDLE"
        st = d.status()["fake"]
        assert not st["idle_connected"] and st["state"] != "idling", st
        assert not c.srv.lines("IDLE")
        assert d.stop() == 0


@timeout(40)
def test_idle_without_continuation_times_out(env):
    """M37: IDLE never answered with '+': hauld gives up within about
    `timeout` (5 s) and reconnects; the second connection works (push
    delivered)."""
    with _daemon_case(env, faults_on=1, idle_no_continuation=True) as c, \
            _start(c) as d:
        assert c.srv.wait_for(lambda: c.srv.lines("IDLE"), 10)
        t0 = time.monotonic()
        assert c.srv.wait_for(lambda: c.srv.sessions[0].closed, 15), \
            "hauld still waits for '+' after 15 s:\n" + d.tail()
        env.log("missing '+' detected in %.1fs" % (time.monotonic() - t0))
        assert time.monotonic() - t0 < 9
        assert c.srv.wait_idling(1, "INBOX", timeout=10), d.tail()
        c.srv.add_message("INBOX", sample_message(4))
        assert c.srv.wait_for(lambda: len(c.sink.dumps()) == 4, 5)
        assert d.stop() == 0
        c.runs.append(d.run())
        assert_removed_only_delivered(c)


@timeout(40)
def test_idle_done_ignored_times_out(env):
    """M37: new mail ends IDLE (DONE) but the server never completes the
    IDLE: hauld times out within about `timeout`, reconnects and fetches
    the new message."""
    with _daemon_case(env, faults_on=1, idle_ignore_done=True) as c, \
            _start(c) as d:
        assert c.srv.wait_idling(1, "INBOX", timeout=10)
        c.srv.add_message("INBOX", sample_message(4))
        assert c.srv.wait_for(lambda: c.srv.lines(kinds=("done",)), 5)
        t0 = time.monotonic()
        assert c.srv.wait_for(lambda: len(c.sink.dumps()) == 4, 20), \
            "new mail not fetched after DONE was ignored:\n" + d.tail()
        env.log("ignored DONE -> delivered in %.1fs" % (
            time.monotonic() - t0))
        assert time.monotonic() - t0 < 10
        assert c.srv.connections >= 2
        assert d.stop() == 0


@timeout(40)
def test_exists_4294967295_while_idling(env):
    """M18 in IDLE: '* 4294967295 EXISTS' pushed: that connection is
    dropped as a protocol error, the daemon survives and reconnects;
    nothing delivered twice."""
    with _daemon_case(env) as c, _start(c) as d:
        assert c.srv.wait_idling(1, "INBOX", timeout=10)
        c.srv.push(b"* 4294967295 EXISTS\r\n", "INBOX")
        assert c.srv.wait_for(lambda: c.srv.sessions[0].closed, 5), \
            d.tail()
        assert c.srv.wait_for(lambda: c.srv.connections >= 2, 10)
        assert c.srv.wait_idling(1, "INBOX", timeout=10), d.tail()
        assert d.proc.poll() is None
        assert re.search(r"protocol error", d.text()), d.tail()
        assert d.stop() == 0
        assert_each_once(c.got(), c.ids())


@timeout(40)
def test_uidvalidity_change_while_idling(env):
    """M25: the folder is recreated while hauld idles on it (the server
    says BYE): hauld reconnects, sees the new UIDVALIDITY, delivers only
    the new message (the old ones are matched), no flood."""
    with _daemon_case(env) as c, _start(c) as d:
        assert c.srv.wait_idling(1, "INBOX", timeout=10)
        new = sample_message(5, 620)
        c.srv.recreate_folder("INBOX", [c.msgs[1], c.msgs[0], new,
                                        c.msgs[2]])
        assert c.srv.wait_for(lambda: len(c.sink.dumps()) >= 4, 15), \
            d.tail()
        assert c.srv.wait_idling(1, "INBOX", timeout=10), d.tail()
        time.sleep(0.3)
        assert d.stop() == 0
        r = d.run()
        c.runs.append(r)
        assert r.grep(r"UIDVALIDITY changed")
        assert_each_once(c.got(), c.ids() + [header(new, "Message-ID")])


@timeout(40)
def test_uidvalidity_code_within_session(env):
    """M25: '* OK [UIDVALIDITY n]' arrives while idling (the server
    renumbered the open folder): hauld drops that session (every UID plan
    is void), reconnects, matches the old messages and delivers only the
    new one; nothing removed (keep)."""
    with _daemon_case(env) as c, _start(c) as d:
        assert c.srv.wait_idling(1, "INBOX", timeout=10)
        c.srv.add_message("INBOX", sample_message(6, 610))
        assert c.srv.wait_for(lambda: len(c.sink.dumps()) == 4, 5)
        assert c.srv.wait_idling(1, "INBOX", timeout=10)
        c.srv.change_uidvalidity("INBOX", announce="code")
        assert c.srv.wait_for(lambda: c.srv.connections >= 2, 10), \
            d.tail()
        assert c.srv.wait_idling(1, "INBOX", timeout=10), d.tail()
        time.sleep(0.3)
        assert d.stop() == 0
        c.runs.append(d.run())
        assert_each_once(c.got(), c.ids() + [header(sample_message(
            6, 610), "Message-ID")])
        assert not c.srv.lines("UID STORE") and not c.srv.expunges()
