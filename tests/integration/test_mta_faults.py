# ISC License; see LICENSE.
"""hauld against a failing MTA or LDA (reliability.md 4.4, D1-D13): the
scripted fake MTA (tests/fixtures/fakemta.py) gives every reply shape at
every stage, including malformed, reordered and missing replies; the LDA
cases use small shell scripts; D9 runs the private Postfix with a fake
milter that is down, slow, rejecting or tempfailing.

The source is a fake POP3 server (keep = no), so a deletion is visible.
Every test checks: hauld ends by itself (exit 0/1), no secret in its
output, no credential in the clear, no DELE for a message the MTA did not
accept (I4), and no loss (I1): every message is either still on the
server or was accepted by the MTA; after the fault clears, every message
that was not refused is delivered, at most once more than the number of
transactions whose outcome was unknown (I2).
"""

import os
import socket
import struct
import threading

import haulfix
from haulfix import timeout
from hauldrun import Hauld, header, lda_script, message_ids
from fakemta import FakeMTA
from fakepop3 import FakePOP3, sample_message, sample_messages

TIMEOUT = 60

USER = "fetcher"
PW = "Mta-fault-pw-Rt62Yb"
RCPT = "rcpt@local.test"


def setup_module(env):
    haulfix.need_root()
    haulfix.need_binaries("openssl")
    env.need("hauld")
    env.pki = haulfix.make_pki(os.path.join(env.tmpdir, "pki"))


class Case:
    """Fake POP3 source (keep=no), a fake MTA, hauld."""

    def __init__(self, env, messages=None, n=3, mode="smtp", rcpts=(RCPT,),
                 delivery=None, name="hauld", **mta):
        self.env = env
        self.msgs = list(messages if messages is not None
                         else sample_messages(n, 700))
        self.srv = FakePOP3(self.msgs, users={USER: PW}, tls="implicit",
                            certfile=env.pki.server_cert,
                            keyfile=env.pki.server_key)
        self.mode = mode
        self.mtas = []
        self.h = Hauld(env.hauld, os.path.join(env.tmpdir, name))
        self.delivery = dict(delivery or {})
        self.h.account("fake", password=PW, host="localhost",
                       port=self.srv.port, user=USER, tls="implicit",
                       ca_file=env.pki.ca_file, keep=False,
                       deliver_to=list(rcpts), timeout=5)
        self.runs = []
        self.mta = self.new_mta(**mta)

    def new_mta(self, **kw):
        m = FakeMTA(lmtp=self.mode == "lmtp", **kw)
        self.mtas.append(m)
        self.mta = m
        self.h.smtp(m.port, mode=self.mode, command_timeout=3,
                    final_timeout=3, **self.delivery)
        return m

    def run(self, rcs=(0, 1), timeout=30):
        r = self.h.run(timeout=timeout)
        self.runs.append(r)
        r.check(self.h, rcs=rcs)
        assert not self.srv.saw_credentials_before_tls()
        assert not self.srv.errors, self.srv.errors
        for m in self.mtas:
            assert not m.errors, m.errors
            assert not m.wire_violations, m.wire_violations
        self.check_no_loss()
        return r

    def accepted_ids(self):
        out = []
        for m in self.mtas:
            for t in m.accepted:
                out.append(header(t.data, "Message-ID"))
        return out

    def check_no_loss(self):
        """I1/I4: everything gone from the server was accepted by an MTA
        (and reported delivered by hauld before its DELE)."""
        done = set()
        for x in self.runs:
            done |= set(x.delivered_uids())
        bad = set(self.srv.deleted_uids()) - done
        assert not bad, "DELE before delivery: %s" % sorted(bad)
        acc = set(self.accepted_ids())
        for m in self.msgs:
            if m not in self.srv.remaining():
                assert header(m, "Message-ID") in acc, \
                    "%s left the server, no MTA accepted it" % header(
                        m, "Message-ID")

    def ids(self, idx=None):
        all_ = message_ids(self.msgs)
        return all_ if idx is None else [all_[i - 1] for i in idx]

    def close(self):
        for m in self.mtas:
            m.stop()
        self.srv.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def each_once(got, want):
    dup = sorted({m for m in got if got.count(m) > 1})
    assert not dup, "delivered twice: %s" % dup
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))


def _fault(env, kind, unknown=False, n=3, **mta):
    """Run 1 against the faulty MTA, run 2 (and 3) against a healthy one.
    kind: tempfail (kept, then each delivered once; with unknown, at most
    twice) or refused (kept, marked refused, never tried again)."""
    with Case(env, n=n, **mta) as c:
        r1 = c.run(rcs=(1,) if kind == "tempfail" else (0, 1))
        s = r1.session()
        assert s["deleted"] == 0 and c.srv.dele_count() == 0, c.srv.dump()
        assert len(c.srv.remaining()) == n, "mail left the server"
        if kind == "refused":
            assert s["refused"] == n, s
        else:
            assert s["refused"] == 0 and s["error"], s
        bad = c.mta
        good = c.new_mta()
        r2 = c.run(rcs=(0,))
        if kind == "tempfail":
            got = message_ids([t.data for t in good.accepted])
            if unknown:
                assert sorted(set(got)) == sorted(c.ids())
                # duplicates only for what the faulty MTA may have taken
                assert len(got) == n
            else:
                each_once(got, c.ids())
            assert c.srv.remaining() == []
        else:
            assert good.transactions == [], \
                "refused mail offered again (delivery loop)"
            assert len(c.srv.remaining()) == n
            r3 = c.run(rcs=(0,))
            assert good.transactions == [] and c.srv.dele_count() == 0
            assert r3.session()["delivered"] == 0
        return c, r1, r2, bad


# --------------------------------------------------------------------------
# D1: 4xx at each stage


def test_d1_421_greeting(env):
    """D1: 421 greeting: temporary, kept, later delivered once."""
    _fault(env, "tempfail", replies={"greeting": "421 4.3.2 busy"})


def test_d1_ehlo_451(env):
    """D1: EHLO answered 451."""
    _fault(env, "tempfail", replies={"EHLO": "451 4.3.0 later"})


def test_d1_mail_451(env):
    """D1: MAIL 451 (every message of the session)."""
    _fault(env, "tempfail", replies={"MAIL": "451 4.3.0 later"})


def test_d1_rcpt_450(env):
    """D1: RCPT 450."""
    _fault(env, "tempfail", replies={"RCPT": "450 4.2.1 mailbox busy"})


def test_d1_rcpt_452(env):
    """D1: RCPT 452."""
    _fault(env, "tempfail", replies={"RCPT": "452 4.5.3 too many"})


def test_d1_data_451(env):
    """D1: DATA 451."""
    _fault(env, "tempfail", replies={"DATA": "451 4.3.0 later"})


def test_d1_end_of_data_451_and_452(env):
    """D1: end of data 451, then 452 (alternating): nothing deleted."""
    _fault(env, "tempfail", replies={"DOT": ["451 4.3.0 x", "452 4.3.1 y",
                                             "451 4.3.0 z"]})


# --------------------------------------------------------------------------
# D2: 5xx: keep on server, marked refused, no loop


def test_d2_rcpt_550(env):
    """D2: RCPT 550: refused, kept, never offered again."""
    _fault(env, "refused", replies={"RCPT": "550 5.1.1 no such user"})


def test_d2_rcpt_553(env):
    """D2: RCPT 553."""
    _fault(env, "refused", replies={"RCPT": "553 5.1.3 bad address"})


def test_d2_end_of_data_552(env):
    """D2: end of data 552 (too big for the MTA)."""
    _fault(env, "refused", replies={"DOT": "552 5.3.4 too big"})


def test_d2_end_of_data_554_milter_reject(env):
    """D2: end of data 554 (a content filter rejects): refused, kept on
    the server, the operator alerted (log), no delivery loop."""
    c, r1, _, _ = _fault(env, "refused",
                         replies={"DOT": "554 5.7.1 rejected by policy"})
    assert r1.grep(r"refused uid"), r1.tail()


def test_d2_mail_550(env):
    """D2: MAIL 550."""
    _fault(env, "refused", replies={"MAIL": "550 5.7.1 sender refused"})


# --------------------------------------------------------------------------
# D3: LMTP, three recipients, mixed results


def test_d3_lmtp_250_452_550(env):
    """D3: LMTP end of data 250 / 452 / 550 for three recipients, and 452
    again for every retry of b in that run: the message stays on the
    server; every retry in that run names only the 452 recipient; the next
    run (a new hauld) sends it to b only; once b has it every recipient is
    final and the message is deleted, and never offered again."""
    rc = ["a@local.test", "b@local.test", "c@local.test"]
    with Case(env, n=1, mode="lmtp", rcpts=rc,
              replies={"DOT": ["250 2.0.0 a ok", "452 4.2.2 b over quota",
                               "550 5.1.1 c unknown"] +
                       ["452 4.2.2 b still over quota"] * 10}) as c:
        c.run()
        assert c.srv.dele_count() == 0 and len(c.srv.remaining()) == 1, \
            c.mta.transactions
        t = c.mta.transactions
        assert len(t[0].final) == 3, t
        for x in t[1:]:
            assert [r.decode() for r in x.rcpts] == \
                ["RCPT TO:<b@local.test>"], x.rcpts
        good = c.new_mta()
        c.run()
        assert len(good.transactions) == 1, good.transactions
        rcpts = [x.decode() for x in good.transactions[0].rcpts]
        # The first run recorded a (250) and c (550) as final in the UID
        # store: the next run offers it to b alone (no duplicate for a,
        # no second try for c).
        assert rcpts == ["RCPT TO:<b@local.test>"], rcpts
        assert c.srv.remaining() == [], "all final but not deleted"
        c.run(rcs=(0,))
        assert len(good.transactions) == 1


# --------------------------------------------------------------------------
# D4/D5: the end-of-data reply never comes


def test_d4_end_of_data_held(env):
    """D4: the MTA never answers the final dot (final_timeout = 3 s): the
    outcome is unknown, so the message stays on the server and is retried
    (a duplicate is possible, a loss is not)."""
    c, r1, _, _ = _fault(env, "tempfail", unknown=True, n=1,
                         replies={"DOT": "!hold"})
    assert r1.elapsed < 15, r1.elapsed


def test_d5_reset_after_dot(env):
    """D5: connection reset (RST) after the dot, before the reply."""
    _fault(env, "tempfail", unknown=True, n=2, replies={"DOT": "!reset"})


def test_d5_close_after_dot(env):
    """D5: FIN after the dot, before the reply."""
    _fault(env, "tempfail", unknown=True, n=2, replies={"DOT": "!close"})


# --------------------------------------------------------------------------
# D6: malformed replies are temporary failures


def test_d6_mismatched_multiline_codes(env):
    """D6 (CVE-2020-8794 class): "250-" then "550 " at MAIL: a parser
    error, treated as 4xx (kept, retried, delivered once)."""
    _fault(env, "tempfail", replies={"MAIL": b"250-ok\r\n550 5.0.0 no\r\n"})


def test_d6_overlong_reply_line(env):
    """D6: a 700-octet RCPT reply line (over 512): temporary."""
    _fault(env, "tempfail",
           replies={"RCPT": b"250 " + b"x" * 700 + b"\r\n"})


def test_d6_non_numeric_code(env):
    """D6: "2x0 ok" to DATA: temporary."""
    _fault(env, "tempfail", replies={"DATA": b"2x0 go ahead\r\n"})


def test_d6_bare_lf_reply(env):
    """D6: a reply ended by a bare LF: temporary."""
    _fault(env, "tempfail", replies={"MAIL": b"250 2.1.0 Ok\n"})


def test_d6_continuation_2yz_then_5yz_at_end_of_data(env):
    """D6: "250-" continuation then a "554" final line to the dot: the
    outcome is unknown (malformed after the data): kept and retried, never
    marked refused."""
    c, r1, _, _ = _fault(env, "tempfail", unknown=True, n=1,
                         replies={"DOT": b"250-2.0.0 ok\r\n554 5.0.0 no\r\n"})
    assert r1.session()["refused"] == 0


# --------------------------------------------------------------------------
# D7: pipelining and BDAT misbehaviour


def test_d7_pipelined_replies_out_of_order(env):
    """D7: the replies to a pipelined MAIL/RCPT/DATA group come in reverse
    order (354 first): protocol error, transaction aborted, kept."""
    c, r1, _, bad = _fault(env, "tempfail", pipeline="reverse")
    assert bad.accepted == []


def test_d7_pipelined_reply_missing(env):
    """D7: the reply to MAIL is missing from a pipelined group: the next
    ones are taken for it, which is a class error: aborted, kept."""
    c, r1, _, bad = _fault(env, "tempfail", pipeline="drop")
    assert bad.accepted == []


def _big(n, size=150 * 1024):
    return [sample_message(300 + i, size) for i in range(n)]


def test_d7_bdat_chunk_refused(env):
    """D7 (RFC 3030): CHUNKING; the first (non-LAST) chunk is answered
    451: no further chunk, RSET, kept; delivered once later."""
    caps = ["PIPELINING", "CHUNKING", "8BITMIME", "ENHANCEDSTATUSCODES"]
    with Case(env, messages=_big(2), caps=caps,
              replies={"BDAT": ["451 4.3.0 chunk failed"] * 10}) as c:
        r1 = c.run(rcs=(1,))
        assert r1.session()["error"], r1.tail()
        assert "BDAT" in c.mta.commands(), c.mta.commands()
        assert c.mta.accepted == [] and c.srv.dele_count() == 0
        assert len(c.srv.remaining()) == 2
        c.new_mta(caps=caps)
        c.run(rcs=(0,))
        each_once(c.accepted_ids(), c.ids())
        assert c.srv.remaining() == []


def test_d7_bdat_connection_lost_mid_chunk(env):
    """D7: the MTA drops the connection in the middle of a BDAT chunk:
    kept, retried, delivered once."""
    caps = ["PIPELINING", "CHUNKING", "ENHANCEDSTATUSCODES"]
    with Case(env, messages=_big(1), caps=caps,
              replies={"BDAT": ["!midchunk"]}) as c:
        r1 = c.run(rcs=(1,))
        assert r1.session()["delivered"] == 0, r1.tail()
        assert c.srv.dele_count() == 0
        assert c.mta.accepted == []
        c.new_mta(caps=caps)
        c.run(rcs=(0,))
        each_once(c.accepted_ids(), c.ids())


# --------------------------------------------------------------------------
# D8: SIZE and 8BITMIME


def test_d8_size_too_small_refused_before_mail(env):
    """D8: EHLO SIZE 2000; message 2 is 6 kB: refused before MAIL (no
    partial send: the MTA never sees it), kept on the server, not tried
    again; messages 1 and 3 are delivered."""
    msgs = [sample_message(1, 700), sample_message(2, 6000),
            sample_message(3, 700)]
    caps = ["PIPELINING", "SIZE 2000", "8BITMIME"]
    with Case(env, messages=msgs, caps=caps) as c:
        r1 = c.run()
        each_once(c.accepted_ids(), c.ids([1, 3]))
        assert len(c.mta.transactions) == 2, c.mta.transactions
        assert c.srv.remaining() == [msgs[1]]
        assert r1.session()["refused"] == 1
        assert r1.grep(r"SIZE"), r1.tail()
        for t in c.mta.transactions:
            assert b"SIZE=" in t.mail, t.mail
        c.run(rcs=(0,))
        assert len(c.mta.transactions) == 2
        assert c.srv.remaining() == [msgs[1]]


def test_d8_eight_bit_without_8bitmime_sent_as_is(env):
    """D8: 8-bit content and no 8BITMIME: haul sends it anyway (documented
    in docs/delivery-protocol.md: every target MTA takes 8-bit data) with
    no BODY=8BITMIME, byte for byte; with 8BITMIME offered the parameter
    is there."""
    body = "Gr\u00fc\u00dfe, caf\u00e9 \u2603\r\n".encode("utf-8")
    m = (b"From: a@example.test\r\nTo: b@example.test\r\n"
         b"Subject: 8bit\r\nMessage-ID: <eight@example.test>\r\n"
         b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body)
    with Case(env, messages=[m], caps=["PIPELINING"]) as c:
        c.run(rcs=(0,))
        t = c.mta.accepted
        assert len(t) == 1 and b"BODY=8BITMIME" not in t[0].mail
        assert t[0].data.endswith(body), t[0].data[-80:]
    with Case(env, messages=[m], caps=["PIPELINING", "8BITMIME"],
              name="hauld2") as c:
        c.run(rcs=(0,))
        assert b"BODY=8BITMIME" in c.mta.accepted[0].mail


# --------------------------------------------------------------------------
# D11: LDA failures


def _lda_case(env, body, kind, lda_timeout=None, n=2, size=700):
    with Case(env, messages=[sample_message(i + 1, size)
                             for i in range(n)]) as c:
        bad = lda_script(os.path.join(env.tmpdir, "bad-lda"), body)
        c.h.lda([bad, "%u"], **({"lda_timeout": lda_timeout}
                               if lda_timeout else {}))
        r1 = c.h.run(timeout=40)
        c.runs.append(r1)
        r1.check(c.h, rcs=(1,) if kind == "tempfail" else (0, 1))
        assert c.srv.dele_count() == 0, c.srv.dump()
        assert len(c.srv.remaining()) == n
        s = r1.session()
        assert s["delivered"] == 0
        if kind == "refused":
            assert s["refused"] == n, s
        else:
            assert s["refused"] == 0, s
        out = os.path.join(env.tmpdir, "out")
        os.makedirs(out, exist_ok=True)
        os.chmod(out, 0o777)        # hauld may run the LDA as its user
        good = lda_script(os.path.join(env.tmpdir, "good-lda"),
                          'cat > "$(mktemp %s/m.XXXXXX)" || exit 75' % out)
        c.h.lda([good, "%u"])
        r2 = c.h.run()
        c.runs.append(r2)
        r2.check(c.h, rcs=(0,))
        got = []
        for name in os.listdir(out):
            with open(os.path.join(out, name), "rb") as f:
                got.append(header(f.read(), "Message-ID"))
        if kind == "tempfail":
            each_once(got, c.ids())
            assert c.srv.remaining() == []
        else:
            assert got == [] and len(c.srv.remaining()) == n
        return r1


def _lda_outs(out):
    """{recipient: [Message-ID, ...]} of what the LDA stored in out."""
    got = {}
    for rc in sorted(os.listdir(out)):
        for name in os.listdir(os.path.join(out, rc)):
            with open(os.path.join(out, rc, name), "rb") as f:
                got.setdefault(rc, []).append(header(f.read(), "Message-ID"))
    return got


def test_d3_lda_two_recipients_one_tempfails(env):
    """D3 with the LDA (one run per recipient): a takes it, b answers 75.
    The message stays on the server; the next run runs the LDA for b
    only (a is recorded as done), then the message is deleted."""
    rc = ["a@local.test", "b@local.test"]
    with Case(env, n=1, rcpts=rc) as c:
        out = os.path.join(env.tmpdir, "d3-lda")
        for r in rc:
            os.makedirs(os.path.join(out, r))
        os.chmod(out, 0o777)
        for r in rc:
            os.chmod(os.path.join(out, r), 0o777)
        flaky = lda_script(os.path.join(env.tmpdir, "d3-flaky"),
                           '[ "$1" = b@local.test ] && { cat >/dev/null; '
                           'exit 75; }\ncat > "$(mktemp %s/$1/m.XXXXXX)" '
                           '|| exit 75' % out)
        c.h.lda([flaky, "%u"])
        r1 = c.h.run()
        c.runs.append(r1)
        r1.check(c.h, rcs=(1,))
        assert len(c.srv.remaining()) == 1 and c.srv.dele_count() == 0
        assert _lda_outs(out) == {"a@local.test": c.ids()}
        good = lda_script(os.path.join(env.tmpdir, "d3-good"),
                          'cat > "$(mktemp %s/$1/m.XXXXXX)" || exit 75'
                          % out)
        c.h.lda([good, "%u"])
        r2 = c.h.run()
        c.runs.append(r2)
        r2.check(c.h, rcs=(0,))
        # a does not get a second copy; b gets its first
        assert _lda_outs(out) == {"a@local.test": c.ids(),
                                  "b@local.test": c.ids()}
        assert c.srv.remaining() == []


def test_d11_lda_refuses_one_of_two_recipients(env):
    """D11 with two recipients: the LDA refuses a (67) and takes b: the
    refusal is final for a only; b has it, so the message counts as
    delivered (and is deleted), with a warning naming a."""
    rc = ["a@local.test", "b@local.test"]
    with Case(env, n=1, rcpts=rc) as c:
        out = os.path.join(env.tmpdir, "d11-two")
        os.makedirs(os.path.join(out, "b@local.test"))
        os.chmod(out, 0o777)
        os.chmod(os.path.join(out, "b@local.test"), 0o777)
        lda = lda_script(os.path.join(env.tmpdir, "d11-two-lda"),
                         '[ "$1" = a@local.test ] && { cat >/dev/null; '
                         'echo "no such user" >&2; exit 67; }\n'
                         'cat > "$(mktemp %s/$1/m.XXXXXX)" || exit 75' % out)
        c.h.lda([lda, "%u"])
        r = c.h.run()
        c.runs.append(r)
        r.check(c.h, rcs=(0,))
        assert _lda_outs(out) == {"b@local.test": c.ids()}
        assert c.srv.remaining() == []
        assert r.grep(r"refused it for a@local\.test"), r.tail()


def test_d11_lda_exit_77_refused(env):
    """D11: EX_NOPERM (77): permanent, kept, marked refused."""
    _lda_case(env, "cat >/dev/null; exit 77", "refused")


def test_d11_lda_exit_78_refused(env):
    """D11: EX_CONFIG (78): permanent as well (policy as D2)."""
    _lda_case(env, "cat >/dev/null; exit 78", "refused")


@timeout(60)
def test_d11_lda_hangs(env):
    """D11: the LDA never exits (lda_timeout = 2 s): killed, temporary,
    kept; delivered once later."""
    # No `exec`: the shell's child `sleep` holds the stderr pipe too; the
    # agent's whole process group is killed, so the timeout still ends it.
    r = _lda_case(env, "cat >/dev/null; sleep 60", "tempfail",
                  lda_timeout=2, n=1)
    assert r.elapsed < 25, r.elapsed


def test_d11_lda_closes_stdin_early(env):
    """D11: the LDA closes stdin after 10 bytes of a 300 kB message and
    exits 75: hauld survives the EPIPE (no SIGPIPE death), temporary."""
    _lda_case(env, "head -c 10 >/dev/null; exec 0<&-; exit 75", "tempfail",
              size=300 * 1024)


def test_d11_lda_closes_stdin_early_exit_0(env):
    """D11: the LDA reads 10 bytes of a 300 kB message and exits 0: it
    said "delivered" (that is the LDA's contract); hauld must not die of
    SIGPIPE and must not count a write failure as a loss of state: the
    outcome is documented in docs/security.md."""
    with Case(env, messages=[sample_message(1, 300 * 1024)]) as c:
        lda = lda_script(os.path.join(env.tmpdir, "short-lda"),
                         "head -c 10 >/dev/null; exit 0")
        c.h.lda([lda, "%u"])
        r = c.h.run()
        c.runs.append(r)
        r.check(c.h)
        s = r.session()
        env.log("LDA exit 0 after a short read: %s" % s)
        # whatever hauld decided, a DELE only follows a recorded delivery
        assert set(c.srv.deleted_uids()) <= set(r.delivered_uids())
        assert s["delivered"] + s["refused"] <= 1


def test_d11_lda_stderr_logged_escaped(env):
    """D11: the LDA writes to stderr (with control bytes) and exits 75:
    temporary; its stderr text reaches the log without raw control
    bytes."""
    r = _lda_case(env, "cat >/dev/null; printf 'lda: disk \\033[31mred\\001"
                  "\\n' >&2; exit 75", "tempfail", n=1)
    assert "\x1b" not in r.log and "\x01" not in r.log


# --------------------------------------------------------------------------
# D12: 452 4.3.1 for a while, then recovery


def test_d12_insufficient_storage_then_recovers(env):
    """D12: the MTA answers 452 4.3.1 to the end of data four times (over
    several sessions), then recovers: every message delivered exactly
    once, nothing deleted before acceptance, the server ends empty."""
    with Case(env, n=3, replies={"DOT": ["452 4.3.1 Insufficient system "
                                         "storage"] * 4}) as c:
        for i in range(4):
            c.run()
            if not c.srv.remaining():
                break
        each_once(c.accepted_ids(), c.ids())
        assert c.srv.remaining() == []
        assert c.mta.replies["DOT"] == []


# --------------------------------------------------------------------------
# D13: the MTA restarts mid-transaction


def test_d13_mta_restarts_at_every_stage(env):
    """D13: the connection is reset at MAIL, RCPT, DATA, the end of data
    (twice) in successive sessions (an MTA restarting): no loss, each
    message delivered, duplicates only for the dot resets."""
    with Case(env, n=3, replies={"MAIL": ["!reset"], "RCPT": ["!close"],
                                 "DATA": ["!reset"],
                                 "DOT": ["!reset", "!close"]}) as c:
        for i in range(8):
            c.run()
            if not c.srv.remaining():
                break
        assert c.srv.remaining() == []
        got = c.accepted_ids()
        assert sorted(set(got)) == sorted(c.ids())
        assert len(got) <= len(c.ids()) + 2, got


# --------------------------------------------------------------------------
# D9: the private Postfix with a milter that is down, slow or refusing


class FakeMilter:
    """A minimal milter (protocol version 6) on a unix socket: continue
    everywhere, and `action` at end of body: 'c' accept, 'r' reject, 't'
    tempfail; `delay` seconds before every reply (slow)."""

    def __init__(self, path, action=b"c", delay=0.0):
        self.path, self.action, self.delay = path, action, delay
        self.ls = socket.socket(socket.AF_UNIX)
        self.ls.bind(path)
        os.chmod(path, 0o666)
        self.ls.listen(8)
        self.ls.settimeout(0.3)
        self.stop_ev = threading.Event()
        self.bodies = 0
        self.errors = []
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()

    def loop(self):
        while not self.stop_ev.is_set():
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self.conn, args=(s,), daemon=True).start()

    def _read(self, s, n):
        d = b""
        while len(d) < n:
            x = s.recv(n - len(d))
            if not x:
                raise EOFError
            d += x
        return d

    def _send(self, s, cmd, data=b""):
        if self.delay:
            self.stop_ev.wait(self.delay)
        s.sendall(struct.pack(">I", len(data) + 1) + cmd + data)

    def conn(self, s):
        try:
            while True:
                n = struct.unpack(">I", self._read(s, 4))[0]
                pkt = self._read(s, n)
                cmd = pkt[:1]
                if cmd == b"O":
                    self._send(s, b"O", struct.pack(">III", 6, 0, 0))
                elif cmd in (b"D", b"A"):
                    continue
                elif cmd == b"Q":
                    break
                elif cmd == b"E":
                    self.bodies += 1
                    self._send(s, self.action)
                else:
                    self._send(s, b"c")
        except (EOFError, OSError):
            pass
        except Exception as e:      # noqa: BLE001
            self.errors.append(repr(e))
        finally:
            s.close()

    def close(self):
        self.stop_ev.set()
        self.ls.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _postfix_milter_case(env, action=None, delay=0.0, kind="tempfail"):
    haulfix.need_binaries("postfix", "postconf")
    p = haulfix.Postfix(main_extra={"milter_command_timeout": "2s",
                                    "milter_content_timeout": "2s",
                                    "milter_connect_timeout": "2s"})
    milter = None
    try:
        p.start()
        if action is not None:
            milter = FakeMilter(p.milter_socket, action, delay)
        with Case(env, n=2) as c:
            c.h.smtp(p.fetch_port, host=p.host, command_timeout=10,
                     final_timeout=10)
            r = c.h.run(timeout=40)
            c.runs.append(r)
            r.check(c.h, rcs=(1,) if kind == "tempfail" else (0, 1))
            s = r.session()
            assert c.srv.dele_count() == 0, c.srv.dump()
            assert len(c.srv.remaining()) == 2
            assert s["delivered"] == 0 and s["deleted"] == 0, s
            if kind == "refused":
                assert s["refused"] == 2, s
            else:
                assert s["refused"] == 0 and s["error"], s
            assert not p.maildir_files("alice") and \
                not p.maildir_files("catchall")
            return r, milter
    finally:
        if milter is not None:
            milter.close()
        p.close()


@timeout(90)
def test_d9_postfix_milter_down_tempfails(env):
    """D9: milter socket refused (milter_default_action = tempfail): 451,
    the D1 path: kept, nothing delivered."""
    _postfix_milter_case(env, None)


@timeout(90)
def test_d9_postfix_milter_slow_tempfails(env):
    """D9: the milter answers after 4 s (Postfix's milter timeouts are
    2 s): the default action (tempfail) applies: kept."""
    r, m = _postfix_milter_case(env, b"c", delay=4.0)


@timeout(90)
def test_d9_postfix_milter_rejects(env):
    """D9: the milter rejects at end of body: Postfix says 5xx, hauld
    marks both refused, keeps them on the server."""
    r, m = _postfix_milter_case(env, b"r", kind="refused")
    assert m.bodies >= 2


@timeout(90)
def test_d9_postfix_milter_tempfails(env):
    """D9: the milter tempfails at end of body: 4xx, kept."""
    r, m = _postfix_milter_case(env, b"t")
    assert m.bodies >= 1


# --------------------------------------------------------------------------
# M39 (MTA direction): the peer never reads


@timeout(60)
def test_m39_mta_never_reads_write_deadline(env):
    """M39 (write deadline): the MTA answers DATA with 354 and then never
    reads again (4 KiB receive buffer, 3 MB message): hauld's writes stall
    and its deadline (command_timeout = 3 s) ends the session; the message
    stays on the server and is delivered once later.  (Toward POP3/IMAP
    servers hauld only writes short commands within a bounded window, so
    a server that never reads shows up as a read deadline: M38.)"""
    big = [b"From: a@example.test\r\nSubject: big\r\n"
           b"Message-ID: <big900@example.test>\r\n\r\n" +
           (b"y" * 70 + b"\r\n") * 43000]
    with Case(env, messages=big, size=4096,
              replies={"DATA": ["!noread"]}) as c:
        r = c.run(rcs=(1,))
        assert r.elapsed < 20, "took %.1fs" % r.elapsed
        assert r.grep(r"deadline|timed out|timeout"), r.tail()
        assert c.srv.dele_count() == 0 and len(c.srv.remaining()) == 1
        c.new_mta()
        c.run(rcs=(0,))
        each_once(c.accepted_ids(), c.ids())
        assert c.srv.remaining() == []
