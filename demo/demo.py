#!/usr/bin/env python3
# ISC License; see LICENSE.
"""haul demo: hauld's real job, end to end, on 127.0.0.1 (`make demo`).

    python3 demo/demo.py [--build DIR] [--keep]     run it (as root)
    python3 demo/demo.py --append DIR [--user jdoe] new mail at the provider
    python3 demo/demo.py --stop DIR                 stop a --keep demo

A private Dovecot plays the remote provider (an IMAP and a POP3 mailbox,
pre-filled), a private Postfix plays the local MTA with haul-milter in the
milter chain of its fetch listener, delivering into maildirs; hauld runs
with etc/demo/haul.conf (filled in).  The demo shows the initial fetch,
`haulctl status`, the local mailboxes and one delivered message's headers,
the push delay of a new message (IMAP IDLE), and a second pass after a
restart that delivers nothing twice.  Then it stops everything it started
(by PID, also on Ctrl-C/SIGTERM), unless --keep (or KEEP=1) leaves it
running and prints how to poke at it.  Exit status: 0 OK, 1 a step failed
(named in the message), 130/143 interrupted.  docs/demo.md explains it.

Python 3 stdlib only; the fixtures are tests/fixtures/haulfix.py.
"""

import argparse
import base64
import email.utils
import imaplib
import json
import os
import random
import re
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import textwrap
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(TOP, "tests", "fixtures"))
import haulfix  # noqa: E402

TEMPLATE = os.path.join(TOP, "etc", "demo", "haul.conf")
STATE_FILE = "demo.json"      # in the demo dir: what runs, for --stop

IMAP_ACCOUNT, POP_ACCOUNT = "work-imap", "isp-pop3"
IMAP_USER, POP_USER = "jane", "jdoe"          # at the provider
IMAP_LOCAL, POP_LOCAL = "alice", "bob"        # local maildirs (local.test)
IMAP_COUNT, POP_COUNT = 300, 200
# hauld and haul-milter refuse to run as root without a user to become:
# both drop to this one (created if missing, like .ci/deps.sh does).
DAEMON_USER = haulfix.DAEMON_USER

FETCH_TIMEOUT = 40            # seconds for the initial fetch
PUSH_TIMEOUT = 15
PASS_TIMEOUT = 20


class StepFailed(Exception):
    """A step did not do what it should; the message says what."""


class Interrupted(BaseException):
    """SIGINT/SIGTERM/SIGHUP: a BaseException, so no `except Exception`
    on the way swallows it."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _on_signal(signum, frame):
    raise Interrupted(signum)


# --------------------------------------------------------------------------
# Output: numbered steps, indented details, timings on the right.

WIDTH = 78


class Out:
    def __init__(self):
        self.tty = sys.stdout.isatty()
        self.step_no = 0
        self.step_name = "start-up"
        self.t_step = time.monotonic()
        self.open_header = False   # a header waits for its timing

    def write(self, text):
        sys.stdout.write(text)
        sys.stdout.flush()

    def _close_header(self, timing=""):
        if self.open_header:
            self.write((" " + timing if timing else "") + "\n")
            self.open_header = False

    def step(self, title, live=False):
        """Start a step.  live=False: the header waits for end() to add
        the step's time on its right; live=True: it is printed whole now
        (the step prints its own progress)."""
        self._close_header()
        self.step_no += 1
        self.step_name = re.split(r":| \(", title)[0]
        self.t_step = time.monotonic()
        head = "[%d] %s" % (self.step_no, title)
        if live:
            self.write(head + "\n")
        else:
            self.write(head.ljust(WIDTH - 7))
            self.open_header = True

    def end(self):
        """The step's time, on its header line (if that is still open)."""
        self._close_header("%5.2fs" % (time.monotonic() - self.t_step))

    def detail(self, text="", indent=6):
        self._close_header()
        for ln in text.splitlines() or [""]:
            self.write((" " * indent + ln if ln else "") + "\n")

    def elapsed(self):
        return time.monotonic() - self.t_step


def mb(n):
    return "%.1f MB" % (n / 1e6) if n >= 100000 else "%d KB" % (n // 1000)


def nice_path(path):
    """path relative to the current directory if it is below it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


def short(path, dir):
    """path with the demo dir shown as DIR/ (it is printed once)."""
    return path.replace(dir + "/", "$D/") if dir else path


# --------------------------------------------------------------------------
# Realistic provider mailboxes

_SENDERS = [
    ("Ada Lovelace", "ada@analytical.example"),
    ("GitHub", "notifications@github.example"),
    ("Bank of Example", "statements@bank.example"),
    ("Grace Hopper", "grace@cobol.example"),
    ("haul-dev list", "haul-dev@lists.example"),
    ("Parcel Service", "tracking@parcels.example"),
    ("Linus", "linus@kernel.example"),
    ("Margaret Hamilton", "mh@apollo.example"),
    ("Weekly Digest", "digest@news.example"),
    ("Müller, Jörg", "joerg.mueller@firma.example"),
]
_SUBJECTS = [
    "Re: quarterly numbers (v{n})",
    "Your order #{n} has shipped",
    "[haul-dev] [PATCH {n}/9] imap: resume a literal across reads",
    "Weekly digest #{n}: what happened on the list",
    "Lunch on Friday?",
    "Invoice INV-{n} is ready",
    "=?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen_({n})?=",
    "Fwd: meeting notes {n}",
    "Your statement for account ...{n}",
    "Re: Re: Re: the build is red again",
]


def provider_messages(user, n, seed):
    """n messages for user: varied senders, subjects, sizes (mostly small,
    some medium, a few large), list mail, 8-bit and encoded-word headers,
    a dot-stuffing/mbox trap now and then, dates over the last days."""
    rng = random.Random(seed)
    now = int(time.time())
    out = []
    for i in range(1, n + 1):
        name, addr = rng.choice(_SENDERS)
        subject = rng.choice(_SUBJECTS).format(n=rng.randint(100, 9999))
        r = rng.random()
        size = (rng.randint(800, 6000) if r < 0.70 else
                rng.randint(8000, 40000) if r < 0.96 else
                rng.randint(100000, 300000))
        headers = []
        if "lists" in addr or "[haul-dev]" in subject:
            headers.append(("List-Id", "haul development <haul-dev."
                            "lists.example>"))
        if rng.random() < 0.3:
            headers.append(("In-Reply-To", "<thread.%d@remote.test>" %
                            rng.randint(1, 50)))
        # a provider stores the envelope sender as Return-Path; hauld
        # uses it as MAIL FROM (delivery.envelope_from = return-path)
        out.append(b"Return-Path: <%s>\n" % addr.encode() +
                   haulfix.make_message(
            seed * 100000 + i, size=size,
            sender=email.utils.formataddr((name, addr)),
            to="%s@remote.test" % user, subject=subject,
            date=now - (n - i) * 900 - rng.randint(0, 600),
            msgid="<%s.%d.%s@remote.test>" % (user, i, secrets.token_hex(4)),
            headers=headers, tricky=(i % 23 == 0)))
    return out


# --------------------------------------------------------------------------
# Processes we start ourselves (hauld, haul-milter)

def milter_answers(path):
    """True once a milter at the unix socket path answers option
    negotiation (it is serving, not just bound)."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(path)
        body = b"O" + struct.pack(">III", 6, 0x1ff, 0x1fffff)
        s.sendall(struct.pack(">I", len(body)) + body)
        head = s.recv(5)
        return len(head) == 5 and head[4:5] == b"O"
    except OSError:
        return False
    finally:
        s.close()


class Daemon:
    """A program in the foreground (-f), stdout/stderr to a log file, in
    its own session (Ctrl-C reaches only the demo, which stops it in
    order)."""

    def __init__(self, name, argv, log):
        self.name, self.argv, self.log = name, argv, log
        self.proc = None
        self.start_time = None

    def start(self):
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen(
                self.argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                start_new_session=True, cwd="/")
        self.start_time = haulfix._proc_start(self.proc.pid)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def check_running(self):
        if self.proc.poll() is not None:
            raise StepFailed("%s exited with status %d:\n%s" % (
                self.name, self.proc.returncode, tail(self.log, 15)))

    def stop(self, timeout=15):
        """SIGTERM, wait, SIGKILL if needed; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        # anything it left in its session (it should leave nothing)
        for pid in haulfix._group_members(self.proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return self.proc.returncode


def tail(path, n=15):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return "(no %s)" % path
    return "\n".join(lines[-n:]) or "(empty)"


# --------------------------------------------------------------------------
# The demo


class Demo:
    def __init__(self, args):
        self.args = args
        self.keep = args.keep
        self.build = os.path.abspath(args.build)
        self.hauld_bin = os.path.join(self.build, "hauld")
        self.milter_bin = os.path.join(self.build, "haul-milter")
        self.haulctl_bin = os.path.join(self.build, "haulctl")
        self.out = Out()
        self.dir = None
        self.dovecot = self.postfix = None
        self.milter = self.hauld = None
        self.stopped_pids = []
        self.t0 = time.monotonic()

    # helpers ---------------------------------------------------------
    def p(self, path):
        return short(path, self.dir)

    def haulctl(self, *args, check=True):
        r = subprocess.run([self.haulctl_bin, "-c", self.conf] + list(args),
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True, timeout=15)
        if check and r.returncode != 0:
            raise StepFailed("haulctl %s: exit %d: %s" % (
                " ".join(args), r.returncode, r.stderr.strip()))
        return r

    def status(self):
        r = self.haulctl("status", "--json")
        try:
            return {a["name"]: a for a in json.loads(r.stdout)["accounts"]}
        except (ValueError, KeyError) as e:
            raise StepFailed("haulctl status --json: unreadable output "
                             "(%s): %r" % (e, r.stdout[:200]))

    def fetch_now(self, name):
        """haulctl fetch NAME; an account already under way is fine."""
        r = self.haulctl("fetch", name, check=False)
        if r.returncode != 0 and not re.search(r"is (fetching|idling)",
                                               r.stderr):
            raise StepFailed("haulctl fetch %s: %s" % (name,
                                                       r.stderr.strip()))

    def local_count(self, user):
        return len(self.postfix.maildir_files(user))

    def wait_queue_empty(self, timeout=15):
        """Postfix has delivered everything it accepted."""
        end = time.monotonic() + timeout
        while True:
            q = self.postfix.queue()
            busy = sum(len(q[k]) for k in ("maildrop", "incoming", "active"))
            if not busy:
                if q["deferred"] or q["hold"]:
                    raise StepFailed("Postfix deferred %d message(s): %s" % (
                        len(q["deferred"]) + len(q["hold"]),
                        self.postfix.logs(8)))
                return
            if time.monotonic() > end:
                raise StepFailed("Postfix queue not empty after %ds: %s"
                                 % (timeout, q))
            time.sleep(0.05)

    def save_state(self):
        """DIR/demo.json: every process the demo runs (PID + start time),
        so `demo.py --stop DIR` can stop a --keep demo, or clean up after a
        demo that was killed with SIGKILL."""
        procs = []
        for what, obj in (("hauld", self.hauld), ("haul-milter",
                                                    self.milter)):
            if obj is not None and obj.proc is not None:
                procs.append({"what": what, "pid": obj.pid,
                              "start": obj.start_time})
        for what, f in (("postfix", self.postfix), ("dovecot",
                                                     self.dovecot)):
            if f is not None and f.pid:
                procs.append({"what": what, "pid": f.pid,
                              "start": f._pid_start,
                              "pidfile": f._pidfiles()[0]})
        fdirs = [f.dir for f in (self.dovecot, self.postfix) if f]
        tmp = os.path.join(self.dir, STATE_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"procs": procs, "fixture_dirs": fdirs,
                       "demo_pid": os.getpid(),
                       "provider": self.provider_info()}, f, indent=1)
        os.rename(tmp, os.path.join(self.dir, STATE_FILE))

    def provider_info(self):
        d = self.dovecot
        if d is None:
            return None
        return {"imaps_port": d.imaps_port, "ca_file": d.ca_file,
                "mail_dir": d.mail_dir,
                "users": {IMAP_USER: {"account": IMAP_ACCOUNT,
                                      "local": IMAP_LOCAL},
                          POP_USER: {"account": POP_ACCOUNT,
                                     "local": POP_LOCAL}},
                "local_mail_dir": self.postfix.mail_dir
                if self.postfix else None}

    # steps -----------------------------------------------------------
    def preflight(self):
        if os.geteuid() != 0:
            raise StepFailed(
                "needs root: the private Postfix's master refuses any other "
                "user and Dovecot switches to the mail uid (run: sudo make "
                "demo)")
        missing = [b for b in (self.hauld_bin, self.milter_bin,
                               self.haulctl_bin) if not os.access(b, os.X_OK)]
        if missing:
            raise StepFailed("not built: %s (run: make BUILD=%s)" % (
                ", ".join(missing), self.args.build))
        for prog in ("dovecot", "postfix", "postconf", "openssl"):
            if not shutil.which(prog):
                raise StepFailed("%s is not installed (run: make deps)"
                                 % prog)

    def make_dir(self):
        self.dir = tempfile.mkdtemp(prefix="haul-demo-", dir="/tmp")
        os.chmod(self.dir, 0o755)   # Dovecot/Postfix users traverse it
        self.conf = os.path.join(self.dir, "haul.conf")

    def start_provider(self):
        o = self.out
        o.step("provider: a private Dovecot (IMAPS and POP3S)")
        owner = not self.keep    # a --keep demo outlives this process
        self.passwords = {IMAP_USER: secrets.token_urlsafe(12),
                          POP_USER: secrets.token_urlsafe(12)}
        self.dovecot = haulfix.Dovecot(
            dir=os.path.join(self.dir, "provider"), users=self.passwords,
            keep=True, owner=owner)
        self.dovecot.start()
        self.save_state()
        d = self.dovecot
        self.seeded = {}
        sizes = {}
        for user, n, seed in ((IMAP_USER, IMAP_COUNT, 1),
                              (POP_USER, POP_COUNT, 2)):
            msgs = provider_messages(user, n, seed)
            d.seed(user, msgs)
            self.seeded[user] = n
            sizes[user] = sum(len(m) for m in msgs)
        o.end()
        o.detail("127.0.0.1 IMAPS :%d  POP3S :%d  (test CA %s)" % (
            d.imaps_port, d.pop3s_port, self.p(d.ca_file)))
        o.detail("%-5s IMAP  %3d messages %8s  -> account %s (keep, IDLE)"
                 % (IMAP_USER, IMAP_COUNT, mb(sizes[IMAP_USER]),
                    IMAP_ACCOUNT))
        o.detail("%-5s POP3  %3d messages %8s  -> account %s (delete)"
                 % (POP_USER, POP_COUNT, mb(sizes[POP_USER]), POP_ACCOUNT))

    def start_mta(self):
        o = self.out
        o.step("local MTA: a private Postfix, maildirs for local.test")
        self.postfix = haulfix.Postfix(
            dir=os.path.join(self.dir, "mta"), keep=True,
            owner=not self.keep)
        self.postfix.start()
        self.save_state()
        p = self.postfix
        o.end()
        o.detail("fetch listener 127.0.0.1:%d  smtpd_milters=unix:%s"
                 % (p.fetch_port, self.p(p.milter_socket)))
        o.detail("  milter_default_action=tempfail  "
                 "milter_macro_daemon_name=fetch")
        o.detail("maildirs %s/{%s,%s}" % (self.p(p.mail_dir), IMAP_LOCAL,
                                           POP_LOCAL))

    def write_config(self):
        """DIR/haul.conf from etc/demo/haul.conf, the key and the password
        files (0600).  hauld reads the passwords, and the milter re-reads
        the key on a reload, as DAEMON_USER, so they belong to that user.
        So does DIR itself: hauld removes its socket and pid file there
        at exit (the provider's and the MTA's dirs keep their owners)."""
        haulfix.daemon_user()
        os.makedirs(os.path.join(self.dir, "secrets"), exist_ok=True)
        os.chmod(os.path.join(self.dir, "secrets"), 0o711)
        _, uid, gid = haulfix._user_ids(DAEMON_USER)
        os.chown(self.dir, uid, -1)
        os.chown(os.path.join(self.dir, "secrets"), uid, -1)

        def secret(path, data):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chown(path, uid, gid)

        self.key_file = os.path.join(self.dir, "haul.key")
        secret(self.key_file, base64.b64encode(os.urandom(32)) + b"\n")
        for acct, user in ((IMAP_ACCOUNT, IMAP_USER), (POP_ACCOUNT,
                                                       POP_USER)):
            secret(os.path.join(self.dir, "secrets", acct + ".pass"),
                   self.passwords[user].encode() + b"\n")
        with open(TEMPLATE) as f:
            text = f.read()
        subst = {"DIR": self.dir, "FETCH_PORT": self.postfix.fetch_port,
                 "MILTER_SOCKET": self.postfix.milter_socket,
                 "DAEMON_USER": DAEMON_USER,
                 "IMAPS_PORT": self.dovecot.imaps_port,
                 "POP3S_PORT": self.dovecot.pop3s_port,
                 "CA_FILE": self.dovecot.ca_file}
        for k, v in subst.items():
            text = text.replace("@%s@" % k, str(v))
        left = sorted(set(re.findall(r"@[A-Z0-9_]+@", text)))
        if left:
            raise StepFailed("%s: unknown placeholders %s" % (
                TEMPLATE, ", ".join(left)))
        with open(self.conf, "w") as f:
            f.write(text)
        r = subprocess.run([self.hauld_bin, "-n", "-c", self.conf],
                           capture_output=True, text=True, timeout=15)
        if r.returncode != 0:
            raise StepFailed("hauld -n -c %s:\n%s" % (
                self.conf, (r.stdout + r.stderr).strip()))

    def start_milter(self):
        o = self.out
        o.step("haul-milter in the fetch listener's milter chain")
        self.write_config()
        p = self.postfix
        self.milter = Daemon("haul-milter", [self.milter_bin, "-f", "-c",
                                             self.conf],
                             os.path.join(self.dir, "haul-milter.log"))
        self.milter.start()
        self.save_state()
        end = time.monotonic() + 10
        while not milter_answers(p.milter_socket):
            self.milter.check_running()
            if time.monotonic() > end:
                raise StepFailed("haul-milter does not answer on %s:\n%s"
                                 % (p.milter_socket,
                                    tail(self.milter.log)))
            time.sleep(0.02)
        o.end()
        o.detail("pid %d  unix:%s  as %s:postfix" % (
            self.milter.pid, self.p(p.milter_socket), DAEMON_USER))
        o.detail("config %s  key %s (0600)" % (self.p(self.conf),
                                               self.p(self.key_file)))

    def start_hauld(self):
        self.hauld = Daemon("hauld", [self.hauld_bin, "-f", "-c",
                                      self.conf],
                            os.path.join(self.dir, "hauld.log"))
        self.hauld.start()
        self.save_state()
        sock = os.path.join(self.dir, "hauld.sock")
        end = time.monotonic() + 10
        while True:
            self.hauld.check_running()
            if os.path.exists(sock) and self.haulctl(
                    "status", check=False).returncode == 0:
                return
            if time.monotonic() > end:
                raise StepFailed("hauld's control socket %s does not "
                                 "answer:\n%s" % (sock,
                                                  tail(self.hauld.log)))
            time.sleep(0.02)

    def step_hauld(self):
        o = self.out
        o.step("hauld: two accounts, delivery via_milter to the fetch "
               "listener")
        self.start_hauld()
        o.end()
        o.detail("pid %d  control socket %s  log %s" % (
            self.hauld.pid, self.p(os.path.join(self.dir, "hauld.sock")),
            self.p(self.hauld.log)))

    def initial_fetch(self):
        o = self.out
        o.step("initial fetch (haulctl fetch; progress: haulctl status "
               "--json)", live=True)
        want = {IMAP_ACCOUNT: IMAP_COUNT, POP_ACCOUNT: POP_COUNT}
        mode = {IMAP_ACCOUNT: "keep, IDLE", POP_ACCOUNT: "delete"}
        final = {IMAP_ACCOUNT: "idling", POP_ACCOUNT: "idle"}
        t0 = time.monotonic()
        for name in want:
            self.fetch_now(name)
        done_at = {}
        warned = set()
        fmt = "%-10s %-5s %-11s %-9s %9s %9s %7s"
        o.detail(fmt % ("ACCOUNT", "PROTO", "MODE", "STATE", "FETCHED",
                        "DELIVERED", "TIME"))

        def rows(st):
            out = []
            for name in want:
                a = st.get(name, {})
                total = a.get("progress_total", 0)
                fetched = "%d/%d" % (a.get("progress_done", 0), total) \
                    if total or a.get("state") == "fetching" else "-"
                t = done_at.get(name, time.monotonic() - t0)
                out.append(fmt % (name, a.get("protocol", "?"), mode[name],
                                  a.get("state", "?"), fetched,
                                  a.get("delivered", 0), "%.2fs" % t))
            return out

        last_print = 0.0
        printed = False
        deadline = t0 + FETCH_TIMEOUT
        while True:
            self.hauld.check_running()
            st = self.status()
            for name, n in want.items():
                a = st[name]
                if a["state"] in ("error", "disabled"):
                    raise StepFailed("%s is %s: %s" % (name, a["state"],
                                                       a["last_error"]))
                if a["state"] == "backoff" and name not in warned:
                    warned.add(name)
                    o.detail("%s: %s, hauld retries: %s" % (
                        name, a["state"], a["last_error"]))
                    printed = False
                if a["delivered"] > n:
                    raise StepFailed("%s delivered %d, the provider had "
                                     "only %d" % (name, a["delivered"], n))
                if name not in done_at and a["delivered"] == n and \
                        a["state"] == final[name]:
                    done_at[name] = time.monotonic() - t0
            now = time.monotonic()
            finished = len(done_at) == len(want)
            if o.tty:
                if printed:
                    o.write("\x1b[%dA" % len(want))
                for r in rows(st):
                    o.write("\r\x1b[K      " + r + "\n")
                printed = True
            elif finished or now - last_print >= 1.0:
                if finished:
                    for r in rows(st):
                        o.detail(r)
                else:
                    o.detail("%5.1fs  " % (now - t0) + "   ".join(
                        "%s %s %d/%d" % (name, st[name]["state"],
                                         st[name]["delivered"], want[name])
                        for name in want))
                last_print = now
            if finished:
                break
            if now > deadline:
                raise StepFailed("not everything delivered after %ds: %s"
                                 % (FETCH_TIMEOUT, ", ".join(
                                     "%s %s %d/%d" % (n, st[n]["state"],
                                                      st[n]["delivered"],
                                                      want[n])
                                     for n in want)))
            time.sleep(0.1)
        total = sum(want.values())
        t = max(done_at.values())
        o.detail("%d messages fetched, signed, verified by haul-milter and "
                 "delivered in %.2fs (%d msg/s)" % (total, t, total / t))

    def show_status(self):
        o = self.out
        o.step("haulctl status", live=True)
        r = self.haulctl("status")
        o.detail(r.stdout.rstrip("\n"), indent=2)

    def show_mailboxes(self):
        o = self.out
        o.step("local mailboxes (Postfix virtual maildirs)", live=True)
        self.wait_queue_empty()
        self.counts = {}
        for user, acct, n in ((IMAP_LOCAL, IMAP_ACCOUNT, IMAP_COUNT),
                              (POP_LOCAL, POP_ACCOUNT, POP_COUNT)):
            c = self.local_count(user)
            self.counts[user] = c
            o.detail("%-18s %4d messages  <- %s" % (
                "%s@local.test" % user, c, acct))
            if c != n:
                raise StepFailed("%s@local.test has %d messages, expected "
                                 "%d" % (user, c, n))
        path = self.postfix.maildir_files(IMAP_LOCAL)[0]
        with open(path, "rb") as f:
            data = f.read()
        o.detail("one of them, %s (header):" % self.p(path))
        head = data.split(b"\n\n", 1)[0].decode("utf-8", "replace")
        fields = re.findall(r"(?m)^([^ \t:]+):(.*(?:\n[ \t].*)*)", head)
        boring = ("to", "date", "mime-version", "content-type",
                  "content-transfer-encoding", "x-haulfix-seq",
                  "in-reply-to", "list-id")
        for name, value in fields:
            if name.lower() in boring:
                continue
            for ln in ("%s:%s" % (name, value)).splitlines():
                ln = re.sub(r"^[ \t]+", "    ", ln)
                # long lines wrapped for the screen (deeper indent)
                for part in textwrap.wrap(ln, 88,
                                          subsequent_indent="      ") or [ln]:
                    o.detail(part.rstrip(), indent=8)
        names = [n.lower() for n, _ in fields]
        if "x-haul-token" in names:
            raise StepFailed("X-Haul-Token reached the mailbox: " + path)
        for need in ("x-haul-account", "x-haul-trace"):
            if need not in names:
                raise StepFailed("no %s header in %s" % (need, path))
        o.detail("no X-Haul-Token: hauld signed the message with one (to "
                 "%s@fetch.invalid)," % IMAP_ACCOUNT)
        o.detail("haul-milter checked and removed it, replaced the "
                 "recipient with %s@local.test," % IMAP_LOCAL)
        o.detail("added X-Haul-Account and X-Haul-Trace.  The \"via imap "
                 "account\" Received: is hauld's.")

    def push(self):
        o = self.out
        o.step("push: APPEND a new message to %s's INBOX at the provider"
               % IMAP_USER, live=True)
        d = self.dovecot
        before = set(self.postfix.maildir_files(IMAP_LOCAL))
        msgid = "<pushed.%s@remote.test>" % secrets.token_hex(6)
        msg = haulfix.make_message(
            999999, size=3000, to="%s@remote.test" % IMAP_USER,
            sender="Ada Lovelace <ada@analytical.example>",
            subject="Pushed by the demo at %s" % time.strftime("%H:%M:%S"),
            date=int(time.time()), msgid=msgid, crlf=True)
        st = self.status()[IMAP_ACCOUNT]
        if not st["idle_connected"]:
            raise StepFailed("%s is not in IDLE (state %s)" % (
                IMAP_ACCOUNT, st["state"]))
        log_off = os.path.getsize(self.hauld.log)
        with d.imap_session(IMAP_USER) as c:
            t0 = time.monotonic()
            typ, resp = c.append("INBOX", None, None, msg)
            t_append = time.monotonic() - t0
            if typ != "OK":
                raise StepFailed("APPEND: %s" % resp)
        m = re.search(rb"APPENDUID \d+ (\d+)", resp[0] or b"")
        # hauld logs "delivered folder F uid U ... delay Nms" at Postfix's
        # 250, N counted from its UID FETCH: read it as it is written.
        logged = re.compile(r"delivered folder INBOX uid %s .* delay (\d+)ms"
                            % (m.group(1).decode() if m else r"\d+"))
        t_250 = hauld_ms = None
        log_text = ""
        end = t0 + PUSH_TIMEOUT
        new = []
        while True:
            if t_250 is None:
                with open(self.hauld.log, encoding="utf-8",
                          errors="replace") as f:
                    f.seek(log_off)
                    log_text += f.read()
                    log_off = f.tell()
                hit = logged.search(log_text)
                if hit:
                    t_250 = time.monotonic() - t0
                    hauld_ms = int(hit.group(1))
            new = [f for f in self.postfix.maildir_files(IMAP_LOCAL)
                   if f not in before]
            if new:
                break
            if time.monotonic() > end:
                raise StepFailed(
                    "the new message is not in %s@local.test after %ds "
                    "(hauld log:\n%s)" % (IMAP_LOCAL, PUSH_TIMEOUT,
                                           tail(self.hauld.log, 8)))
            time.sleep(0.002)
        delay = time.monotonic() - t0
        with open(new[0], "rb") as f:
            data = f.read()
        if msgid.encode() not in data:
            raise StepFailed("an unexpected message arrived: " + new[0])
        o.detail("push delay: %.2fs from the APPEND to the file in "
                 "%s@local.test" % (delay, IMAP_LOCAL))
        o.detail("%6.3fs  APPEND to the provider (%s's mail client)" % (
            t_append, IMAP_USER), indent=8)
        if t_250 is not None and t_250 <= delay:
            wait = max(t_250 - hauld_ms / 1000.0 - t_append, 0)
            o.detail("%6.3fs  Dovecot tells its IDLE clients (it batches "
                     "changes ~0.5s)" % wait, indent=8)
            o.detail("%6.3fs  hauld: UID FETCH, SMTP via haul-milter, "
                     "Postfix's 250 (hauld.log)" % (hauld_ms / 1000.0),
                     indent=8)
            o.detail("%6.3fs  Postfix: queue manager -> virtual(8) -> "
                     "maildir" % (delay - t_250), indent=8)
        trace = re.search(rb"(?mi)^X-Haul-Trace:(.*)", data)
        if trace:
            o.detail("X-Haul-Trace:" + trace.group(1).decode().rstrip(),
                     indent=8)
        self.wait_queue_empty()
        self.counts[IMAP_LOCAL] = self.local_count(IMAP_LOCAL)
        self.seeded[IMAP_USER] += 1

    def second_pass(self):
        o = self.out
        o.step("second pass: restart hauld, fetch both accounts again",
               live=True)
        t0 = time.monotonic()
        rc = self.hauld.stop()
        self.stopped_pids.append(("hauld", self.hauld.pid))
        if rc != 0:
            raise StepFailed("hauld exit %s after SIGTERM:\n%s" % (
                rc, tail(self.hauld.log)))
        old = self.hauld.pid
        self.start_hauld()
        o.detail("hauld pid %d stopped (exit 0), pid %d started, "
                 "%.2fs" % (old, self.hauld.pid, time.monotonic() - t0))
        t1 = time.monotonic()
        for name in (IMAP_ACCOUNT, POP_ACCOUNT):
            self.fetch_now(name)
        end = t1 + PASS_TIMEOUT
        while True:
            self.hauld.check_running()
            st = self.status()
            imap, pop = st[IMAP_ACCOUNT], st[POP_ACCOUNT]
            for a in (imap, pop):
                if a["state"] in ("error", "disabled", "backoff"):
                    raise StepFailed("%s is %s: %s" % (
                        a["name"], a["state"], a["last_error"]))
            if imap["state"] == "idling" and pop["state"] == "idle" and \
                    pop["last_success"] is not None:
                break
            if time.monotonic() > end:
                raise StepFailed("second pass not done after %ds: %s %s, "
                                 "%s %s" % (PASS_TIMEOUT, IMAP_ACCOUNT,
                                            imap["state"], POP_ACCOUNT,
                                            pop["state"]))
            time.sleep(0.05)
        self.wait_queue_empty()
        t = time.monotonic() - t1
        remote = {u: self.dovecot.count(u) for u in (IMAP_USER, POP_USER)}
        rows = ((IMAP_ACCOUNT, IMAP_USER, IMAP_LOCAL, imap),
                (POP_ACCOUNT, POP_USER, POP_LOCAL, pop))
        for acct, ruser, luser, a in rows:
            local = self.local_count(luser)
            o.detail("%-10s delivered %d   provider %-5s %3d   %-17s %3d "
                     "(%s)" % (
                         acct, a["delivered"], ruser, remote[ruser],
                         luser + "@local.test", local,
                         "unchanged" if local == self.counts[luser]
                         else "was %d" % self.counts[luser]))
        for acct, ruser, luser, a in rows:
            if a["delivered"] != 0 or \
                    self.local_count(luser) != self.counts[luser]:
                raise StepFailed("%s delivered %d message(s) again" % (
                    acct, a["delivered"]))
        if remote[IMAP_USER] != self.seeded[IMAP_USER]:
            raise StepFailed("the keep account's provider mailbox has %d "
                             "messages, expected %d" % (
                                 remote[IMAP_USER], self.seeded[IMAP_USER]))
        if remote[POP_USER] != 0:
            raise StepFailed("the delete account's provider mailbox still "
                             "has %d messages" % remote[POP_USER])
        o.detail("keep-on-server delivered nothing twice: %d on the "
                 "provider, %d in %s@local.test" % (
                     remote[IMAP_USER], self.counts[IMAP_LOCAL], IMAP_LOCAL))
        o.detail("the delete account's provider mailbox is empty; pass "
                 "done in %.2fs" % t)

    # stopping --------------------------------------------------------
    def stop_everything(self):
        """Stop what we started, newest first, by PID.  Returns a list of
        (what, pid) that were running."""
        stopped = []
        errors = []
        for what, obj in (("hauld", self.hauld),
                          ("haul-milter", self.milter)):
            if obj is not None and obj.proc is not None and \
                    obj.proc.poll() is None:
                stopped.append((what, obj.pid))
                obj.stop()
        for what, f in (("postfix", self.postfix),
                        ("dovecot", self.dovecot)):
            if f is None:
                continue
            pid = f.pid
            try:
                f.close()
                if pid:
                    stopped.append((what, pid))
            except Exception as e:   # keep going: stop the rest
                errors.append("%s: %s" % (what, e))
        return stopped, errors

    def leftovers(self, pids):
        """Recorded PIDs (and their process groups) still alive."""
        left = []
        for what, pid in pids:
            if haulfix._alive(pid) or haulfix._group_members(pid):
                left.append("%s %d" % (what, pid))
        return left

    def keep_message(self):
        o = self.out
        d, p = self.dovecot, self.postfix
        me = nice_path(os.path.abspath(__file__))
        ctl = nice_path(self.haulctl_bin)
        o.step("left running (--keep / KEEP=1): poke at it", live=True)
        for ln in [
            "export D=%s" % self.dir,
            "processes  hauld %d, haul-milter %d, Postfix master %d, "
            "Dovecot master %d" % (self.hauld.pid, self.milter.pid, p.pid,
                                   d.pid),
            "logs       $D/hauld.log $D/haul-milter.log "
            "$D/mta/log/maillog",
            "           $D/provider/log/dovecot.log",
            "config     $D/haul.conf (etc/demo/haul.conf filled in)",
            "mailboxes  $D/mta/mail/%s/new (%s), $D/mta/mail/%s/new (%s)"
            % (IMAP_LOCAL, IMAP_ACCOUNT, POP_LOCAL, POP_ACCOUNT),
            "",
            "%s -c $D/haul.conf status        # also: status --json, "
            "metrics" % ctl,
            "%s -c $D/haul.conf fetch %s  # poll now" % (ctl, POP_ACCOUNT),
            "python3 %s --append $D              # mail for %s (IMAP: "
            "pushed)" % (me, IMAP_USER),
            "python3 %s --append $D --user %s  # mail for %s (POP3), then "
            "fetch" % (me, POP_USER, POP_USER),
            "curl -sS --cacert $D/provider/pki/ca.crt -u \"%s:$(cat "
            "$D/secrets/%s.pass)\" \\" % (IMAP_USER, IMAP_ACCOUNT),
            "     -T msg.eml imaps://localhost:%d/INBOX    # any RFC 5322 "
            "file" % d.imaps_port,
            "ls $D/mta/mail/%s/new | wc -l" % IMAP_LOCAL,
            "",
            "stop everything (by the PIDs above) and remove $D:",
            "python3 %s --stop $D" % me,
        ]:
            o.detail(ln)

    # the whole run ---------------------------------------------------
    def run(self):
        o = self.out
        self.preflight()
        self.make_dir()
        o.write("haul demo: hauld fetches from a private provider into a "
                "private local MTA\n")
        o.write("  everything on 127.0.0.1 under $D=%s  (binaries: %s/)\n"
                % (self.dir, nice_path(self.build)))
        self.start_provider()
        self.start_mta()
        self.start_milter()
        self.step_hauld()
        self.initial_fetch()
        self.show_status()
        self.show_mailboxes()
        self.push()
        self.second_pass()


def main_run(args):
    demo = Demo(args)
    o = demo.out
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    # Daemonizing masters (Dovecot, Postfix) become our children, so
    # stopping them also reaps them (no zombies under pid 1 in containers).
    haulfix.become_subreaper()
    rc = 0
    failure = None
    try:
        demo.run()
    except StepFailed as e:
        failure = str(e)
        rc = 1
    except Interrupted as e:
        failure = str(e)
        rc = 128 + e.signum
    except haulfix.FixtureError as e:
        failure = str(e)
        rc = 1
    except Exception as e:   # a bug or an unexpected state: still clean up
        failure = "%s: %s" % (type(e).__name__, e)
        rc = 1
    finally:
        # A second Ctrl-C must not cut the clean-up short.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        if failure is not None:
            o._close_header("FAILED" if rc == 1 else "interrupted")
            failed_step = ("step %d (%s)" % (o.step_no, o.step_name)
                           if o.step_no else "the start (checks)")
        if demo.keep and failure is None:
            demo.save_state()
            demo.keep_message()
            o.write("demo OK in %.1fs; left running under %s\n" % (
                time.monotonic() - demo.t0, demo.dir))
            return 0
        if demo.keep and rc == 1 and demo.dir:
            # --keep: leave a failed setup running for inspection
            demo.save_state()
            o.write("left running for inspection (--keep): logs under %s; "
                    "stop it with: python3 %s --stop %s\n" % (
                        demo.dir, nice_path(os.path.abspath(__file__)),
                        demo.dir))
        elif demo.dir:
            o.step("stop everything the demo started", live=False)
            stopped, errors = demo.stop_everything()
            pids = demo.stopped_pids + stopped
            left = demo.leftovers(pids)
            o.end()
            o.detail("stopped: " + ", ".join(
                "%s (pid %d)" % (w, p) for w, p in stopped))
            if left or errors:
                o.detail("STILL RUNNING: " + ", ".join(left + errors))
                sys.stderr.write("demo: could not stop: %s (try: python3 "
                                 "%s --stop %s)\n" % (
                                     ", ".join(left + errors), __file__,
                                     demo.dir))
                rc = rc or 1
            else:
                o.detail("no process left")
            if failure is not None and rc == 1:
                o.detail("logs kept in %s (rm -rf it when done)" % demo.dir)
            else:
                shutil.rmtree(demo.dir, ignore_errors=True)
        if failure is None and rc == 0:
            o.write("demo OK in %.1fs\n" % (time.monotonic() - demo.t0))
        elif failure is None:
            o.write("demo FAILED: could not stop everything\n")
        else:
            if rc == 1 and demo.dir:
                logs = {"hauld": "hauld.log",
                        "haul-milter": "haul-milter.log",
                        "Postfix": "mta/log/maillog",
                        "Dovecot": "provider/log/dovecot.log"}
                which = {"provider": ["Dovecot"],
                         "local MTA": ["Postfix"],
                         "haul-milter in the fetch listener's milter chain":
                         ["haul-milter", "Postfix"],
                         "hauld": ["hauld"]}.get(
                             o.step_name, ["hauld", "haul-milter", "Postfix"])
                for name in which:
                    path = os.path.join(demo.dir, logs[name])
                    if os.path.exists(path):
                        o.write("--- %s log, last lines ($D/%s):\n%s\n" % (
                            name, logs[name], tail(path, 8)))
            if rc == 1:
                msg = "demo FAILED at %s: %s" % (failed_step, failure)
            else:
                msg = "demo interrupted at %s by %s" % (failed_step,
                                                         failure)
            sys.stderr.write(msg + "\n")
    return rc


def load_state(dir):
    path = os.path.join(os.path.abspath(dir), STATE_FILE)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        sys.exit("demo: %s: not a demo dir (%s)" % (dir, e))


def main_append(dir, user, file=None):
    """APPEND a message (FILE, or a generated one) to USER's INBOX at the
    provider of a --keep demo; for the IMAP account, wait until hauld has
    delivered it (pushed by IDLE)."""
    dir = os.path.abspath(dir)
    pv = load_state(dir).get("provider") or {}
    info = pv.get("users", {}).get(user)
    if info is None:
        sys.exit("demo: no provider user %r (have: %s)" % (
            user, ", ".join(pv.get("users", {}))))
    with open(os.path.join(dir, "secrets", info["account"] + ".pass")) as f:
        password = f.read().strip()
    if file:
        with open(file, "rb") as f:
            data = f.read()
    else:
        data = haulfix.make_message(
            random.randrange(10 ** 6), size=2500,
            to="%s@remote.test" % user,
            sender="Ada Lovelace <ada@analytical.example>",
            subject="Appended by demo.py --append at %s" % time.strftime(
                "%H:%M:%S"), date=int(time.time()), crlf=True)
    local = os.path.join(pv["local_mail_dir"], info["local"])

    def files():
        out = set()
        for sub in ("new", "cur"):
            try:
                out |= {os.path.join(sub, n)
                        for n in os.listdir(os.path.join(local, sub))}
            except FileNotFoundError:
                pass
        return out

    before = files()
    c = imaplib.IMAP4_SSL("localhost", pv["imaps_port"], timeout=10,
                          ssl_context=haulfix.ssl_context(pv["ca_file"]))
    c.login(user, password)
    t0 = time.monotonic()
    typ, resp = c.append("INBOX", None, None, data)
    c.logout()
    if typ != "OK":
        sys.exit("demo: APPEND failed: %s" % resp)
    m = re.search(rb"APPENDUID \d+ (\d+)", resp[0] or b"")
    print("appended %d bytes to %s's INBOX at the provider (UID %s)" % (
        len(data), user, m.group(1).decode() if m else "?"))
    if user != IMAP_USER:
        print("%s (POP3) polls every minute here; to poll now: haulctl -c "
              "%s/haul.conf fetch %s" % (info["account"], dir,
                                         info["account"]))
        return 0
    end = t0 + 15
    while time.monotonic() < end:
        new = files() - before
        if new:
            print("pushed: in %s@local.test after %.2fs (%s)" % (
                info["local"], time.monotonic() - t0,
                os.path.join(local, sorted(new)[0])))
            return 0
        time.sleep(0.01)
    sys.exit("demo: not delivered to %s@local.test within 15s (see %s/"
             "hauld.log)" % (info["local"], dir))


def main_stop(dir):
    """Stop a --keep demo (or the remains of a killed one) by the PIDs in
    DIR/demo.json, then remove DIR."""
    dir = os.path.abspath(dir)
    st = load_state(dir)
    left = []
    for p in st["procs"]:
        what, pid, start = p["what"], p["pid"], p.get("start")
        if not haulfix._alive(pid, start):
            continue
        if what == "dovecot":
            haulfix._dovecot_fast_stop(pid, start, p["pidfile"])
        haulfix._terminate(pid, start, what)
        if haulfix._alive(pid, start):
            left.append("%s %d" % (what, pid))
        else:
            print("stopped %s (pid %d)" % (what, pid))
    for d in st.get("fixture_dirs", []):
        haulfix.unregister_dir(d)
    if left:
        sys.exit("demo: still running: %s" % ", ".join(left))
    shutil.rmtree(dir, ignore_errors=True)
    print("removed %s" % dir)
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="demo.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.environ.get("BUILD", "build"),
                    help="dir with hauld, haul-milter, haulctl "
                    "(default: build)")
    ap.add_argument("--keep", action="store_true",
                    default=os.environ.get("KEEP", "") not in ("", "0",
                                                               "no"),
                    help="leave everything running (also: KEEP=1)")
    ap.add_argument("--stop", metavar="DIR",
                    help="stop the --keep demo under DIR and remove DIR")
    ap.add_argument("--append", metavar="DIR",
                    help="mail for the provider of the --keep demo under "
                    "DIR (APPEND to --user's INBOX)")
    ap.add_argument("--user", default=IMAP_USER,
                    help="with --append: %s (IMAP account, default) or %s "
                    "(POP3 account)" % (IMAP_USER, POP_USER))
    ap.add_argument("--file", help="with --append: the message to append "
                    "(default: a generated one)")
    args = ap.parse_args(argv)
    if args.stop:
        return main_stop(args.stop)
    if args.append:
        return main_append(args.append, args.user, args.file)
    return main_run(args)


if __name__ == "__main__":
    sys.exit(main())
