# ISC License; see LICENSE.
"""imaprun: IMAP helpers for the hauld integration tests (on top of
hauldrun).  Python 3 stdlib only.

    from imaprun import imap_account, delivered, folder_ends, Daemon
    h = Hauld(env.hauld, env.tmpdir)
    imap_account(h, "acct", password="pw", host="localhost", port=993,
                 ca_file=ca, user="alice", folders=["INBOX", "Lists/a"],
                 deliver_to=["alice@local.test"])
    r = h.run()
    delivered(r)             # [(folder, uid)] from "delivered folder F uid U"
    folder_ends(r)           # [{"fetched": n, "error": text or None}]
    imap_commands(r)         # client commands from the debug trace

    d = Daemon(h)            # hauld -f -d with a control socket
    d.wait(lambda st: st["acct"]["idle_connected"], "idling")
    d.stop(); d.run().check(h)    # the daemon's log as a hauldrun.Run

Message helpers: varied_messages(), crlf(), expected_form(),
strip_prepended() (haul's and the MTA's trace fields off a delivered
copy), sink_payload() (an smtp-sink dump minus its and haul's fields),
haul_origin() (account, mailbox, uid named by haul's Received).
"""

import json
import os
import random
import re
import signal
import subprocess
import time
import urllib.parse

from haulfix import make_message
from hauldrun import Run, header, register_log_file

_DELIVERED_RE = re.compile(r"delivered folder (.+) uid (\d+) size (\d+)")
_ENDED_RE = re.compile(r"folder connection ended: (\d+) fetched"
                       r"(?:; error: (.*))?$")
_CMD_RE = re.compile(r"imap: C: (.*)$")
_RCVD_RE = re.compile(r"Received: from (\S+) \(via (\S+) account (\S+)"
                      r"(?: mailbox (\S+))? uid (\S+)\)")


def imap_account(h, name, password, **opts):
    """Add an IMAP account with test-friendly defaults (one folder INBOX,
    timeout 10; idle stays hauld's default, yes: `hauld -1` must never
    IDLE)."""
    acct = {"protocol": "imap", "folders": ["INBOX"], "timeout": 10}
    acct.update(opts)
    h.account(name, password=password, **acct)
    return h


def delivered(r, account=None, folder=None):
    """[(folder, uid)] of every 'delivered folder F uid U' line."""
    out = []
    for msg in r.messages(account):
        m = _DELIVERED_RE.match(msg)
        if m and (folder is None or m.group(1) == folder):
            out.append((m.group(1), int(m.group(2))))
    return out


def delivered_uids(r, account=None, folder=None):
    return [u for _, u in delivered(r, account, folder)]


def folder_ends(r, account=None):
    """[{fetched, error}] of the 'folder connection ended' lines."""
    out = []
    for msg in r.messages(account):
        m = _ENDED_RE.search(msg)
        if m:
            out.append({"fetched": int(m.group(1)), "error": m.group(2)})
    return out


def imap_commands(r, account=None):
    """Commands hauld sent (debug trace 'imap: C: ...'), in order."""
    out = []
    for d in r.lines(level="debug", account=account):
        m = _CMD_RE.search(d["msg"])
        if m:
            out.append(m.group(1))
    return out


def commands_matching(r, pattern, account=None):
    return [c for c in imap_commands(r, account) if re.search(pattern, c,
                                                             re.I)]


# --------------------------------------------------------------------------
# messages


def varied_messages(n, user, seed=1, start=100000):
    """n varied messages: 0.3 KB to 40 KB (one in 400 is 300 KB), LF and
    CRLF files, dot-stuffing and mbox traps, 8-bit UTF-8 bodies, empty
    bodies, forged X-Haul-* headers (hauld must drop those)."""
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
        out.append(make_message(start + i, **kw))
    return out


def crlf(data):
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _fields(data):
    """(name_lower, raw_field) of the header block of CRLF data, and the
    body offset."""
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
    """The original as hauld must pass it on: CRLF, X-Haul-* fields
    removed from the header block, nothing else changed."""
    data = crlf(orig)
    fields, off = _fields(data)
    keep = b"".join(raw for name, raw in fields
                    if not name.startswith(b"x-haul-"))
    return keep + data[off:]


def _unfold(raw):
    return re.sub(rb"\r?\n[ \t]+", b" ", raw)


def strip_prepended(maildir_file):
    """A delivered copy (LF or CRLF) -> (haul Received fields, haul token
    fields, the rest as CRLF).  Strips from the top only: Return-Path,
    X-Original-To, Delivered-To, the MTA's Received (Postfix, Dovecot
    LMTP, smtp-sink), smtp-sink's X-* fields, haul's Received and
    X-Haul-Token."""
    data = crlf(maildir_file)
    fields, _ = _fields(data)
    pos = 0
    rcvd, tok = [], []
    for name, raw in fields:
        flat = _unfold(raw)
        if name in (b"return-path", b"x-original-to", b"delivered-to",
                    b"x-client-addr", b"x-client-proto", b"x-helo-args",
                    b"x-mail-args", b"x-rcpt-args"):
            pass
        elif name == b"received" and re.search(
                rb"by mx\.haul-fix\.test \(Postfix\)| with LMTP id |"
                rb"by smtp-sink \(smtp-sink\)", flat):
            pass
        elif name == b"received" and re.search(rb"\(via \S+ account ",
                                                flat):
            rcvd.append(raw)
        elif name == b"x-haul-token":
            tok.append(raw)
        else:
            break
        pos += len(raw)
    return rcvd, tok, data[pos:]


def sink_payload(dump):
    """An smtp-sink dump minus the sink's and haul's fields (CRLF) and
    the empty line smtp-sink appends to every dump."""
    rest = strip_prepended(dump)[2]
    return rest[:-2] if rest.endswith(b"\r\n") else rest


def haul_origin(received):
    """(host, proto, account, mailbox, uid) named by haul's Received."""
    text = _unfold(received).decode("latin-1")
    m = _RCVD_RE.match(text)
    assert m, "unexpected haul Received: %r" % text
    mbox = urllib.parse.unquote(m.group(4)) if m.group(4) else None
    return (m.group(1), m.group(2), m.group(3), mbox,
            urllib.parse.unquote(m.group(5)))


# --------------------------------------------------------------------------
# hauld as a daemon


class Daemon:
    """hauld -f [-d] -c CONF with a control socket (set on h unless it
    is), output to DIR/hauld.log; status() through haulctl --json."""

    def __init__(self, h, debug=True, env=None):
        self.h = h
        h.global_opts.setdefault("control_socket",
                                 os.path.join(h.dir, "ctl.sock"))
        h.write()
        self.path = os.path.join(h.dir, "hauld.log")
        register_log_file(self.path)     # run.py's secrets_in_logs check
        self.log = open(self.path, "w+")
        self.t0 = time.monotonic()
        self.rc = None
        argv = [h.binary, "-f"] + (["-d"] if debug else []) + ["-c", h.conf]
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     env=env, start_new_session=True)
        sock = h.global_opts["control_socket"]
        end = time.monotonic() + 10
        while not os.path.exists(sock):
            assert self.proc.poll() is None, "hauld exited %s:\n%s" % (
                self.proc.returncode, self.text())
            assert time.monotonic() < end, "no control socket\n" + \
                self.text()
            time.sleep(0.02)

    def ctl(self, *args):
        return subprocess.run([os.path.join(os.path.dirname(self.h.binary),
                               "haulctl"), "-s",
                               self.h.global_opts["control_socket"]] +
                              list(args), capture_output=True, text=True,
                              timeout=20)

    def status(self):
        r = self.ctl("status", "--json")
        assert r.returncode == 0, r.stderr
        return {a["name"]: a for a in json.loads(r.stdout)["accounts"]}

    def wait(self, pred, what, t=20):
        end = time.monotonic() + t
        st = None
        while time.monotonic() < end:
            assert self.proc.poll() is None, "hauld died (%s):\n%s" % (
                self.proc.returncode, self.tail())
            st = self.status()
            if pred(st):
                return st
            time.sleep(0.05)
        raise AssertionError("timed out waiting for %s: %s\n%s" %
                             (what, st, self.tail()))

    def wait_log(self, pattern, n=1, t=20):
        """Until the log has n lines matching pattern; returns them."""
        end = time.monotonic() + t
        while True:
            got = [ln for ln in self.text().splitlines()
                   if re.search(pattern, ln)]
            if len(got) >= n:
                return got
            if time.monotonic() > end:
                raise AssertionError("timed out waiting for %d x %r "
                                     "(have %d)\n%s" % (n, pattern,
                                                        len(got),
                                                        self.tail()))
            assert self.proc.poll() is None, "hauld died:\n" + self.tail()
            time.sleep(0.05)

    def text(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.path, errors="replace") as f:
            return f.read()

    def tail(self, n=40):
        return "\n".join(self.text().splitlines()[-n:])

    def run(self):
        """The log so far as a hauldrun.Run (for its parsers/check())."""
        return Run(self.argv, self.rc if self.rc is not None else 0,
                   self.text(), "", time.monotonic() - self.t0)

    def stop(self, sig=signal.SIGTERM, t=30):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.rc = self.proc.wait(t)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
                raise AssertionError("hauld did not stop in %ss\n%s" % (
                    t, self.tail()))
        else:
            self.rc = self.proc.returncode
        if not self.log.closed:
            self.log.close()
        return self.rc

    def close(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait(10)
        if not self.log.closed:
            self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def message_id(data):
    return header(data, "Message-ID")


def need_test_hooks(binary):
    """Skip unless binary is a TEST_HOOKS build (HAUL_TEST_WALL_OFFSET
    and the other test hooks exist only there: make test, build/test)."""
    from haulfix import Skip
    with open(binary, "rb") as f:
        if b"HAUL_TEST_WALL_OFFSET" not in f.read():
            raise Skip("%s is not a TEST_HOOKS build (use build/test)"
                       % binary)
