# ISC License; see LICENSE.
"""haul-milter, the real binary: the miltertest scripts in
tests/plugin/miltertest (no MTA, no root), then the private Postfix
(root): a valid token on the fetch listener lands in the right maildirs
tagged and without the token; forged tokens and forged X-Haul-* fields are
refused or stripped; with the milter down the fetch listener says 451;
with the milter bypassed placeholder mail stays deferred; and, end to end,
Dovecot POP3 -> hauld (via_milter) -> Postfix -> haul-milter -> maildir.

Tokens are made here in Python from the canonical string and HMAC in
docs/token.md, independently of lib/token.c: every acceptance is also a
cross-check of the specification.
"""

import base64
import hashlib
import hmac
import os
import re
import shutil
import signal
import smtplib
import socket
import struct
import subprocess
import tempfile
import time

import haulfix
from haulfix import Dovecot, Postfix, make_message, timeout
import hauldrun
from hauldrun import Hauld

TIMEOUT = 60
SETUP_TIMEOUT = 60

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
LUA_DIR = os.path.join(TOP, "tests", "plugin", "miltertest")

# --------------------------------------------------------------------------
# The token, from docs/token.md

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  b"0123456789._/-")


def pct(data):
    """The token's percent-encoding (upper-case hex, one spelling)."""
    return "".join(chr(c) if c in _SAFE else "%%%02X" % c for c in data)


def key_id(key):
    return hashlib.sha256(key).hexdigest()[:8]


def canonical(kid, account, mailbox, uidv, uid, t):
    out = b"haul-token-v1\n"
    for name, val in ((b"k", kid.encode()), (b"a", account.encode()),
                      (b"m", mailbox), (b"u", b"%d." % uidv + uid),
                      (b"t", b"%d" % t)):
        out += name + b"=" + str(len(val)).encode() + b":" + val + b"\n"
    return out


def make_token(key, account, mailbox=b"INBOX", uidv=0, uid=b"1", t=None):
    """The X-Haul-Token value for these fields, signed with key."""
    t = int(time.time()) if t is None else t
    mailbox = mailbox if isinstance(mailbox, bytes) else mailbox.encode()
    uid = uid if isinstance(uid, bytes) else uid.encode()
    kid = key_id(key)
    mac = hmac.new(key, canonical(kid, account, mailbox, uidv, uid, t),
                   hashlib.sha256).digest()
    sig = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    return "v=1; k=%s; a=%s; m=%s; u=%d.%s; t=%d; s=%s" % (
        kid, account, pct(mailbox), uidv, pct(uid), t, sig)


def forge(token):
    """The token with one signature character changed (in the middle: the
    last one also carries padding bits, so it would be malformed)."""
    i = token.index("; s=") + 10
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]


def read_key(path):
    with open(path, "rb") as f:
        return base64.b64decode(f.read().strip())


# --------------------------------------------------------------------------
# Config and the daemon


class HaulConf(Hauld):
    """hauld's config writer plus a milter section: one haul.conf for
    both daemons, as in production."""

    def __init__(self, binary, dir, **kw):
        super().__init__(binary, dir, **kw)
        self.milter_opts = {}

    def milter(self, **opts):
        self.milter_opts.update(opts)
        return self

    def render(self):
        out = super().render()
        opts = dict(self.milter_opts)
        # As root the milter needs a user; group postfix lets Postfix
        # connect to a 0660 socket (None: leave the option out).
        if "user" not in opts and hauldrun.run_user():
            opts["user"] = hauldrun.run_user()
            opts.setdefault("group", "postfix")
        opts = {k: v for k, v in opts.items() if v is not None}
        if opts:
            out += "milter {\n" + "".join(
                "\t%s = %s\n" % (k, hauldrun._value(v))
                for k, v in opts.items()) + "}\n"
        return out


def base_conf(env, dir, socket_path, **milter):
    """acme: single-drop to alice and bob; md: multidrop example.org ->
    local.test; ghost is not configured."""
    c = HaulConf(env.hauld, dir)
    c.delivery(mode="smtp", target="127.0.0.1:25", via_milter=True)
    opts = {"socket": "unix:" + socket_path, "daemon_name": "fetch"}
    opts.update(milter)
    c.milter(**opts)
    common = {"host": "pop.example.net", "port": 995, "tls": "implicit"}
    c.account("acme", password="pw-acme-Xk2", user="acme",
              deliver_to=["alice@local.test", "bob@local.test"], **common)
    c.account("md", password="pw-md-Xk2", user="md", multidrop=True,
              multidrop_domains=["example.org"],
              multidrop_rewrite_domain="local.test", **common)
    return c


def milter_answers(where):
    """True if a milter answers option negotiation (so it is serving, not
    just bound: the socket exists before the signals are set up).  where:
    a unix socket path or "inet:PORT@HOST"."""
    if where.startswith("inet:"):
        port, host = where[5:].split("@")
        s = socket.socket(socket.AF_INET)
        addr = (host, int(port))
    else:
        s = socket.socket(socket.AF_UNIX)
        addr = where
    s.settimeout(2)
    try:
        s.connect(addr)
        body = b"O" + struct.pack(">III", 6, 0x1ff, 0x1fffff)
        s.sendall(struct.pack(">I", len(body)) + body)
        head = s.recv(5)
        return len(head) == 5 and head[4:5] == b"O"
    except OSError:
        return False
    finally:
        s.close()


class Milter:
    """haul-milter -f -c CONF as a child process, stderr to a file."""

    def __init__(self, binary, conf, socket_path, debug=False):
        self.binary = binary
        self.conf = conf
        self.socket = socket_path
        self.debug = debug
        self.proc = None
        self.log_path = conf + ".milter.log"

    def start(self, timeout=10):
        self._log = open(self.log_path, "ab")
        argv = [self.binary, "-f", "-c", self.conf] + \
            (["-d"] if self.debug else [])
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        end = time.monotonic() + timeout
        while not self.listening():
            if self.proc.poll() is not None:
                raise AssertionError("haul-milter exited %d:\n%s" % (
                    self.proc.returncode, self.log()))
            if time.monotonic() > end:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("haul-milter not listening:\n" +
                                     self.log())
            time.sleep(0.02)
        return self

    def listening(self):
        return milter_answers(self.socket)

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=10):
        end = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.log())
            if m:
                return m
            if time.monotonic() > end:
                raise AssertionError("no milter log line %r:\n%s" % (
                    pattern, self.log()[-3000:]))
            time.sleep(0.02)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM; returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("haul-milter ignored SIGTERM:\n" +
                                     self.log())
        self._log.close()
        rc, self.proc = self.proc.returncode, None
        check_sanitizers(self.log())
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, exc, *rest):
        rc = self.stop()
        if exc is None:
            assert rc == 0, "haul-milter exit %s after SIGTERM:\n%s" % (
                rc, self.log()[-3000:])


def check_sanitizers(text):
    """With an ASan/UBSan build (make asan), any report fails the test."""
    for what in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                 "runtime error:"):
        assert what not in text, "sanitizer report:\n" + text[-4000:]


def short_dir():
    """A temp dir with a short path (sun_path holds 108 bytes)."""
    d = tempfile.mkdtemp(prefix="hm", dir="/tmp")
    os.chmod(d, 0o755)
    return d


def setup_module(env):
    env.short = []
    env.postfix = env.dovecot = None


def teardown_module(env):
    for f in (env.postfix, env.dovecot):
        if f is not None:
            f.close()
    for d in env.short:
        shutil.rmtree(d, ignore_errors=True)


def _short(env):
    d = short_dir()
    env.short.append(d)
    return d


# --------------------------------------------------------------------------
# The token format itself


def test_token_spec_known_answer(env):
    """The Python signer reproduces the example of docs/token.md, so the
    tokens below test the milter against the spec, not against itself."""
    key = bytes(range(32))
    assert key_id(key) == "630dcd29"
    assert canonical("630dcd29", "alice", b"INBOX/Sent Items", 1234, b"42",
                     1700000000) == (
        b"haul-token-v1\nk=8:630dcd29\na=5:alice\nm=16:INBOX/Sent Items\n"
        b"u=7:1234.42\nt=10:1700000000\n")
    assert make_token(key, "alice", b"INBOX/Sent Items", 1234, b"42",
                      1700000000) == (
        "v=1; k=630dcd29; a=alice; m=INBOX/Sent%20Items; u=1234.42; "
        "t=1700000000; s=XHTEur5e-r1QN9yvYncygFIk5ni0VoDF9HQDWQwZQ5I")


# --------------------------------------------------------------------------
# miltertest


def _miltertest(env, script, after=None, **defs):
    """Run one Lua script against the real binary; returns its output and
    the config.  after(conf, dir) may return more -D definitions."""
    env.need("haul-milter")
    haulfix.need_binaries("miltertest")
    d = _short(env)
    sock = os.path.join(d, "m.sock")
    c = base_conf(env, d, sock)
    conf = c.write()
    if after:
        defs.update(after(c, d))
    key = read_key(c.key_file)
    other = os.urandom(32)
    now = int(time.time())
    tokens = {
        "TOKEN_ACME": make_token(key, "acme", uid="UIDL-1"),
        "UID_ACME": "0.UIDL-1",
        "TOKEN_MD": make_token(key, "md", uid="7"),
        "TOKEN_GHOST": make_token(key, "ghost"),
        "TOKEN_STALE": make_token(key, "acme", t=now - 601),
        "TOKEN_OTHER_KEY": make_token(other, "acme"),
    }
    tokens["TOKEN_FORGED"] = forge(make_token(key, "acme", uid="UIDL-1"))
    tokens.update(defs)
    argv = ["miltertest", "-s", os.path.join(LUA_DIR, script),
            "-D", "DIR=" + LUA_DIR, "-D", "BIN=" + env.milter,
            "-D", "CONF=" + conf, "-D", "SOCK=" + sock]
    for k, v in tokens.items():
        argv += ["-D", "%s=%s" % (k, v)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60,
                       cwd=d)
    out = r.stdout + r.stderr
    env.log(out)
    check_sanitizers(out)
    assert r.returncode == 0 and "PASS" in r.stdout, \
        "%s failed (rc %d):\n%s" % (script, r.returncode, out)
    assert not os.path.exists(sock), "socket left behind after SIGTERM"
    return out, c


def test_miltertest_negotiation(env):
    _miltertest(env, "negotiate.lua")


def test_miltertest_valid_token(env):
    out, _ = _miltertest(env, "accept.lua")
    assert re.search(r"account=acme: Q1A2B3: accepted: uid 0\.UIDL-1 "
                     r"mailbox INBOX, to alice@local\.test,bob@local\.test",
                     out), out


def test_miltertest_rejections(env):
    out, _ = _miltertest(env, "reject.lua")
    assert "rejected: X-Haul-Token rejected: bad signature" in out, out


def test_miltertest_strips_untrusted_fields(env):
    out, _ = _miltertest(env, "strip.lua")
    assert "removed 4 X-Haul-* field(s)" in out, out


def test_miltertest_multidrop(env):
    _miltertest(env, "multidrop.lua")


def test_miltertest_reload_on_sigusr1(env):
    def new_conf(c, d):
        # the edited config the script copies over the running one
        new = os.path.join(d, "new.conf")
        c.update("acme", deliver_to=["carol@local.test"])
        c.write(new)
        return {"CONF_NEW": new, "SIG_RELOAD": str(int(signal.SIGUSR1))}

    out, _ = _miltertest(env, "reload.lua", after=new_conf)
    assert "SIGUSR1: reloading" in out, out
    assert "configuration reloaded" in out, out


# --------------------------------------------------------------------------
# The daemon: signals, socket, privileges


def test_sigterm_clean_shutdown_removes_socket(env):
    env.need("haul-milter")
    d = _short(env)
    sock = os.path.join(d, "m.sock")
    c = base_conf(env, d, sock)
    m = Milter(env.milter, c.write(), sock)
    m.start()
    st = os.stat(sock)
    assert oct(st.st_mode & 0o777) == oct(0o660), oct(st.st_mode)
    # a second instance refuses to steal the socket
    r = subprocess.run([env.milter, "-f", "-c", c.conf],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "another milter is listening" in r.stderr
    assert m.listening()
    assert m.stop() == 0
    assert not os.path.exists(sock)
    assert "stopping" in m.log()


def test_sighup_stops_like_libmilter(env):
    env.need("haul-milter")
    d = _short(env)
    sock = os.path.join(d, "m.sock")
    m = Milter(env.milter, base_conf(env, d, sock).write(), sock).start()
    m.signal(signal.SIGHUP)
    m.proc.wait(10)
    assert m.stop() == 0
    assert "SIGHUP: stopping (SIGUSR1 reloads)" in m.log()
    assert not os.path.exists(sock)


def _running(pid):
    """True while pid exists and is not a zombie."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_daemon_mode(env):
    """Without -f: the parent returns at once, the daemon serves on."""
    env.need("haul-milter")
    d = _short(env)
    sock = os.path.join(d, "m.sock")
    conf = base_conf(env, d, sock).write()
    argv = [env.milter, "-c", conf]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    assert r.returncode == 0, r
    # the socket exists before the fork: wait for a negotiation answer
    end = time.monotonic() + 10
    while not milter_answers(sock):
        assert time.monotonic() < end, "daemon not answering"
        time.sleep(0.02)
    # the daemon is ours: find it by its exact command line
    pids = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read().split(b"\0")[:-1]
        except OSError:
            continue
        if [x.decode() for x in cmd] == argv:
            pids.append(int(pid))
    assert len(pids) == 1, pids
    pid = pids[0]
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        assert int(fields[3]) == pid, "not a session leader: %r" % fields
    finally:
        os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + 10
    while _running(pid):
        assert time.monotonic() < end, "daemon ignored SIGTERM"
        time.sleep(0.02)
    assert not os.path.exists(sock)


def test_config_change_reloads_without_signal(env):
    env.need("haul-milter")
    d = _short(env)
    sock = os.path.join(d, "m.sock")
    c = base_conf(env, d, sock)
    with Milter(env.milter, c.write(), sock) as m:
        c.update("acme", deliver_to=["carol@local.test"])
        c.write()
        m.wait_log(r"configuration files changed: reloading", 10)
        m.wait_log(r"configuration reloaded", 5)
        # a broken edit keeps the running configuration
        with open(c.conf, "a") as f:
            f.write("account \"broken\" {\n")
        m.wait_log(r"keeping the running configuration", 10)
        assert m.proc.poll() is None


def test_check_mode(env):
    env.need("haul-milter")
    d = _short(env)
    c = base_conf(env, d, os.path.join(d, "m.sock"))
    r = subprocess.run([env.milter, "-n", "-c", c.write()],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "configuration OK" in r.stdout, r
    os.unlink(c.key_file)
    r = subprocess.run([env.milter, "-n", "-c", c.conf],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "warning" in r.stderr, r
    r = subprocess.run([env.milter, "-f", "-c", c.conf],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 1 and "haul.key" in r.stderr, r


# --------------------------------------------------------------------------
# Postfix


# A third listener whose milter is on loopback TCP (Postfix spells it
# inet:HOST:PORT, libmilter inet:PORT@HOST).
INET_LISTENER = """{host}:{port} inet n - n - - smtpd
  -o syslog_name=postfix/inet
  -o smtpd_milters=inet:127.0.0.1:{mport}
  -o milter_default_action=tempfail
  -o milter_macro_daemon_name=fetch
  -o cleanup_service_name=fetchcleanup
"""


def _postfix(env):
    haulfix.need_root()
    haulfix.need_binaries("postfix", "postconf")
    env.need("haul-milter")
    if env.postfix is None:
        env.inet_port = haulfix.free_port()
        env.milter_port = haulfix.free_port(avoid={env.inet_port})
        p = Postfix(master_extra=INET_LISTENER.format(
            host=haulfix.LOOPBACK, port=env.inet_port,
            mport=env.milter_port))
        env.postfix = p
        p.start()
    p = env.postfix
    p.purge()
    for u in p.users + ["catchall"]:
        for f in p.maildir_files(u):
            os.unlink(f)
    return p


def _pf_milter(env, p, **milter):
    """A config whose socket is the fixture's, and the milter on it, run
    as nobody:postfix after reading the key as root."""
    d = _short(env)
    opts = {"user": "nobody", "group": "postfix"}
    opts.update(milter)
    c = base_conf(env, d, p.milter_socket, **opts)
    os.chmod(d, 0o755)
    return c, Milter(env.milter, c.write(), p.milter_socket)


def _fetch_message(i, token=None, extra=(), to="acme@fetch.invalid"):
    hdrs = []
    if token is not None:
        hdrs.append(("X-Haul-Token", token))
    hdrs += list(extra)
    return make_message(i, to=to, headers=hdrs, crlf=True)


def _fields(data, name):
    head = re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]
    return [m.group(1) for m in re.finditer(
        rb"(?im)^" + re.escape(name.encode()) + rb"[ \t]*:(.*)", head)]


@timeout(60)
def test_postfix_valid_token_delivered_tagged(env):
    p = _postfix(env)
    c, m = _pf_milter(env, p)
    key = read_key(c.key_file)
    with m:
        st = os.stat(p.milter_socket)
        assert st.st_uid == haulfix._user_ids("nobody")[1]
        with open("/proc/%d/status" % m.proc.pid) as f:
            uid_line = [ln for ln in f if ln.startswith("Uid:")][0]
        assert uid_line.split()[1:] == [str(st.st_uid)] * 4, uid_line
        tok = make_token(key, "acme", uid="UIDL-77")
        msg = _fetch_message(1, tok, [("X-Haul-Account", "evil"),
                                      ("X-Haul-Trace", "forged"),
                                      ("X-HAUL-misc", "1")])
        assert p.send("sender1@remote.test", ["acme@fetch.invalid"], msg,
                      listener="fetch") == {}
        for user in ("alice", "bob"):
            p.wait_maildir(user, 1)
            data = p.maildir_messages(user)[0]
            assert not _fields(data, "X-Haul-Token"), data[:600]
            assert _fields(data, "X-Haul-Account") == [b" acme"], \
                data[:800]
            assert not _fields(data, "X-Haul-misc")
            trace = _fields(data, "X-Haul-Trace")
            assert len(trace) == 1, data[:800]
            mt = re.match(rb" account=acme; mailbox=INBOX; uid=0\.UIDL-77; "
                          rb"queue-id=([0-9A-Za-z]+)$", trace[0])
            assert mt, trace
            # the queue id is Postfix's, read at end of message
            p.wait_log(r"postfix/fetch/cleanup\[\d+\]: %s: message-id="
                       % mt.group(1).decode())
            assert b"haulfix test message 1" in data
        assert not p.maildir_files("carol")
        m.wait_log(r"account=acme: \w+: accepted: uid 0\.UIDL-77")


@timeout(60)
def test_postfix_forged_token_rejected(env):
    p = _postfix(env)
    c, m = _pf_milter(env, p)
    key = read_key(c.key_file)
    bad = forge(make_token(key, "acme"))
    with m:
        for i, (t, why) in enumerate([
                (bad, b"bad signature"),
                (make_token(os.urandom(32), "acme"), b"unknown key"),
                (make_token(key, "acme", t=int(time.time()) - 3600),
                 b"expired"),
                (None, b"placeholder recipient without")]):
            try:
                p.send("s@remote.test", ["acme@fetch.invalid"],
                       _fetch_message(10 + i, t), listener="fetch")
                raise AssertionError("accepted: %r" % why)
            except smtplib.SMTPDataError as e:
                assert e.smtp_code == 550, e
                assert b"5.7.1" in e.smtp_error and why in e.smtp_error, e
        # a token in a message to real recipients is checked as well
        try:
            p.send("s@remote.test", ["bob@local.test"],
                   _fetch_message(20, bad, to="bob@local.test"),
                   listener="fetch")
            raise AssertionError("forged token accepted")
        except smtplib.SMTPDataError as e:
            assert e.smtp_code == 550, e
    time.sleep(0.3)
    for u in ("alice", "bob", "carol", "catchall"):
        assert not p.maildir_files(u), u
    assert not p.queue("deferred")


@timeout(60)
def test_postfix_forged_account_header_stripped(env):
    """No token: delivered, but no X-Haul-* field survives, whatever the
    spelling (case, blank before the colon, folded)."""
    p = _postfix(env)
    c, m = _pf_milter(env, p)
    with m:
        msg = _fetch_message(30, None, [
            ("X-Haul-Account", "evil"),
            ("x-haul-account", "evil2"),
            ("X-Haul-Account ", "evil3"),
            ("X-Haul-Trace", "account=acme; mailbox=INBOX;\n\tuid=0.1"),
            ("X-Haulage", "kept")], to="bob@local.test")
        assert p.send("s@remote.test", ["bob@local.test"], msg,
                      listener="fetch") == {}
        p.wait_maildir("bob", 1)
        data = p.maildir_messages("bob")[0]
        assert not re.search(rb"(?im)^x-haul-(account|trace)", data), \
            data[:1200]
        assert b"evil" not in data.split(b"\n\n")[0]
        assert _fields(data, "X-Haulage") == [b" kept"]
        m.wait_log(r"removed 4 X-Haul-\* field\(s\)")


@timeout(60)
def test_postfix_multidrop(env):
    p = _postfix(env)
    c, m = _pf_milter(env, p)
    key = read_key(c.key_file)
    with m:
        msg = _fetch_message(40, make_token(key, "md", uid="9"), [
            ("Delivered-To", "carol@example.org"),
            ("Delivered-To", "list@example.org")], to="md@fetch.invalid")
        assert p.send("s@remote.test", ["md@fetch.invalid"], msg,
                      listener="fetch") == {}
        p.wait_maildir("carol", 1)
        data = p.maildir_messages("carol")[0]
        assert _fields(data, "X-Haul-Account") == [b" md"]
    assert not p.maildir_files("alice")


@timeout(60)
def test_postfix_milter_down_tempfails(env):
    p = _postfix(env)
    c, m = _pf_milter(env, p)
    key = read_key(c.key_file)
    assert not m.listening()
    with smtplib.SMTP(p.host, p.fetch_port, timeout=10) as s:
        s.ehlo()
        code, text = s.mail("s@remote.test")
        if code == 250:
            code, text = s.rcpt("acme@fetch.invalid")
        if code == 250:
            code, text = s.data(_fetch_message(50, make_token(key, "acme")))
    assert code == 451, (code, text)
    assert not p.queue("deferred") and not p.queue("incoming")


@timeout(60)
def test_postfix_bypassed_placeholder_stays_deferred(env):
    """The plain listener has no milter: placeholder mail is accepted but
    held by the deferred fetchhold transport, never delivered."""
    p = _postfix(env)
    c, _ = _pf_milter(env, p)
    key = read_key(c.key_file)
    msg = _fetch_message(60, make_token(key, "acme"))
    assert p.send("s@remote.test", ["acme@fetch.invalid"], msg,
                  listener="plain") == {}
    p.wait_queue("deferred", 1)
    time.sleep(0.5)
    assert p.queue("deferred")
    for u in ("alice", "bob", "carol", "catchall"):
        assert not p.maildir_files(u), u
    assert not p.captured()


@timeout(120)
def test_postfix_throughput_with_and_without_milter(env):
    """Informational numbers for the benchmarks issue (<= 25% cost is the
    target there); here only a gross regression fails: the milter path
    must not be more than 3x slower than the plain listener."""
    p = _postfix(env)
    c, m = _pf_milter(env, p)
    key = read_key(c.key_file)
    n = 150

    def run(listener, to, tokens):
        msgs = [_fetch_message(1000 + i, tokens[i] if tokens else None,
                               to=to) for i in range(n)]
        t0 = time.monotonic()
        with p.smtp(listener) as s:
            for mm in msgs:
                s.sendmail("s@remote.test", [to], mm)
        return time.monotonic() - t0

    with m:
        plain = run("plain", "carol@local.test", None)
        toks = [make_token(key, "acme", uid="T%d" % i) for i in range(n)]
        fetch = run("fetch", "acme@fetch.invalid", toks)
        p.wait_maildir("alice", n, timeout=60)
    env.log("SMTP accept rate: plain %.0f msg/s, fetch+milter %.0f msg/s "
            "(%.0f%% cost)" % (n / plain, n / fetch,
                               100 * (fetch - plain) / plain))
    assert fetch < 3 * plain + 1, (plain, fetch)


@timeout(120)
def test_postfix_inet_socket_no_nagle_stall(env):
    """Postfix -> haul-milter over loopback TCP.  Without TCP_NODELAY on
    the accepted sockets, or with a stage whose packet the milter does
    not answer, each message waits 40 ms for a delayed ACK (about 20
    msg/s); with both handled it runs at unix-socket speed."""
    p = _postfix(env)
    spec = "inet:%d@127.0.0.1" % env.milter_port
    c, _ = _pf_milter(env, p, socket=spec)
    key = read_key(c.key_file)
    n = 100

    def run(port):
        msgs = [_fetch_message(2000 + i, make_token(key, "acme",
                                                    uid="N%d" % i))
                for i in range(n)]
        t0 = time.monotonic()
        with smtplib.SMTP(p.host, port, timeout=10) as s:
            for mm in msgs:
                s.sendmail("s@remote.test", ["acme@fetch.invalid"], mm)
        return (time.monotonic() - t0) / n

    with Milter(env.milter, c.conf, spec):
        per = run(env.inet_port)
        p.wait_maildir("alice", n, timeout=60)
    env.log("inet milter: %.1f ms per message" % (per * 1000))
    assert per < 0.025, "%.1f ms per message over TCP: a 40 ms stall" % (
        per * 1000)


def snippet_master(port, sock, access):
    """etc/postfix/master.cf.snippet as shipped, with this test's port,
    socket and access map; its cleanup is renamed (the fixture has a
    fetchcleanup) and fetchhold dropped (the fixture has one)."""
    with open(os.path.join(TOP, "etc", "postfix", "master.cf.snippet")) as f:
        text = f.read()
    out = []
    for line in text.splitlines():
        if line.startswith("#") or line.startswith("fetchhold"):
            continue
        out.append(line)
    text = "\n".join(out) + "\n"
    for a, b in (("127.0.0.1:10025", "127.0.0.1:%d" % port),
                 ("unix:/run/haul/milter.sock", "unix:" + sock),
                 ("/etc/postfix/haul_fetch_access", access),
                 ("fetchcleanup", "snipcleanup"),
                 ("postfix/fetch", "postfix/snippet")):
        assert a in text, "master.cf.snippet lost %r" % a
        text = text.replace(a, b)
    return text


@timeout(90)
def test_postfix_shipped_snippets(env):
    """etc/postfix as shipped: the hauld listener takes the placeholder
    even after XCLIENT (the client address is then the upstream origin)
    but relays nothing else; header_checks strip X-Haul-* on every other
    way in, and its own cleanup keeps them off the token.  The trap, on
    the fixture's fetch listener (default cleanup, header_checks on):
    the token is gone before the milter runs, every message gets 550."""
    haulfix.need_root()
    haulfix.need_binaries("postfix", "postconf")
    env.need("haul-milter")
    d = _short(env)
    regexp = os.path.join(d, "haul_header_checks")
    with open(regexp, "w") as f:
        f.write("/^X-Haul-/ IGNORE\n")
    access = os.path.join(d, "haul_fetch_access")
    with open(access, "w") as f:
        f.write("fetch.invalid OK\n")
    port = haulfix.free_port()
    # our own socket, group postfix (milter.group) so smtpd may connect
    sock = os.path.join(d, "snip.sock")
    p = Postfix(main_extra={"header_checks": "regexp:" + regexp},
                master_extra=snippet_master(port, sock, access))
    try:
        p.start()
        c = base_conf(env, d, sock, group="postfix")
        key = read_key(c.key_file)
        conf = c.write()
        # the same config on the fixture's fetch listener
        c.milter(socket="unix:" + p.milter_socket)
        conf2 = c.write(os.path.join(d, "fixture.conf"))
        with Milter(env.milter, conf, sock), \
                Milter(env.milter, conf2, p.milter_socket):
            with smtplib.SMTP(p.host, port, timeout=10) as s:
                s.ehlo()
                code, _ = s.docmd("XCLIENT", "ADDR=192.0.2.7 "
                                  "NAME=mail.example.net")
                assert code == 220, code
                s.ehlo()
                s.sendmail("s@remote.test", ["acme@fetch.invalid"],
                           _fetch_message(70, make_token(key, "acme")))
                s.rset()
                assert s.mail("s@remote.test")[0] == 250
                code, text = s.rcpt("x@elsewhere.example")
                assert code == 554 and b"Relay access denied" in text, \
                    (code, text)
            try:
                p.send("s@remote.test", ["acme@fetch.invalid"],
                       _fetch_message(71, make_token(key, "acme")),
                       listener="fetch")
                raise AssertionError("token survived header_checks")
            except smtplib.SMTPDataError as e:
                assert e.smtp_code == 550 and b"without an X-Haul-Token" \
                    in e.smtp_error, e
            p.send("s@remote.test", ["carol@local.test"],
                   _fetch_message(72, None, [("X-Haul-Account", "evil")],
                                  to="carol@local.test"))
            p.wait_maildir("alice", 1)
            p.wait_maildir("carol", 1)
        data = p.maildir_messages("alice")[0]
        assert _fields(data, "X-Haul-Account") == [b" acme"], data[:800]
        assert len(_fields(data, "X-Haul-Trace")) == 1
        assert b"192.0.2.7" in data.split(b"\n\n")[0], data[:800]
        assert not _fields(p.maildir_messages("carol")[0],
                           "X-Haul-Account")
    finally:
        p.close()


# --------------------------------------------------------------------------
# hauld end to end


PASSWORDS = {"alice": "Pw-alice-Q7zz1"}


def _dovecot(env):
    haulfix.need_root()
    haulfix.need_binaries("dovecot")
    env.need("hauld")
    if env.dovecot is None:
        d = Dovecot(users=PASSWORDS)
        env.dovecot = d
        d.start()
    return env.dovecot


@timeout(90)
def test_hauld_via_milter_end_to_end(env):
    """Dovecot POP3S -> hauld -1 (via_milter, fetch listener) -> Postfix
    -> haul-milter -> alice's maildir: tagged, traced with the real UIDL,
    token gone; keep=no empties the server.  With the milter down hauld
    sees 451 and the messages stay on the server."""
    p = _postfix(env)
    d = _dovecot(env)
    src = "alice"
    seeded = [make_message(500 + i, to="alice@remote.test")
              for i in range(3)]
    d.seed(src, seeded)
    hd = _short(env)
    c = HaulConf(env.hauld, hd)
    c.smtp(p.fetch_port, via_milter=True)
    c.milter(socket="unix:" + p.milter_socket, daemon_name="fetch",
             user="nobody", group="postfix")
    c.account("pop", password=PASSWORDS[src], host="localhost",
              port=d.pop3s_port, tls="implicit", ca_file=d.ca_file,
              user=src, keep=False, deliver_to=["carol@local.test"])
    conf = c.write()

    # milter down: 451, nothing lost, nothing deleted
    r = c.run()
    r.check(c, rcs=(0, 1))
    assert d.count(src) == 3, "messages left the server without the milter"
    assert not p.maildir_files("carol")
    assert r.grep(r"451"), r.tail()

    with Milter(env.milter, conf, p.milter_socket) as m:
        r = c.run()
        r.check(c, rcs=(0,))
        s = r.session("pop")
        assert (s["fetched"], s["delivered"], s["deleted"]) == (3, 3, 3), s
        p.wait_maildir("carol", 3)
        m.wait_log(r"account=pop: \w+: accepted")
    assert d.count(src) == 0
    uids = set(r.delivered_uids("pop"))
    got = set()
    for data in p.maildir_messages("carol"):
        assert not _fields(data, "X-Haul-Token"), data[:800]
        assert _fields(data, "X-Haul-Account") == [b" pop"]
        tr = _fields(data, "X-Haul-Trace")[0].decode()
        mt = re.match(r" account=pop; mailbox=INBOX; uid=0\.(\S+); "
                      r"queue-id=\w+$", tr)
        assert mt, tr
        got.add(mt.group(1))
    assert got == uids, (got, uids)
