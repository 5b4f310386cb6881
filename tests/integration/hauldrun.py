# ISC License; see LICENSE.
"""hauldrun: run hauld the way the POP3 integration tests need it.
Python 3 stdlib only.

    from hauldrun import Hauld, SmtpSink
    h = Hauld(env.hauld, env.tmpdir)            # state dir, key, secrets
    h.delivery(mode="smtp", target="127.0.0.1:%d" % port)
    h.account("acct", host="localhost", port=995, tls="implicit",
              ca_file=ca, user="alice", password="s3cret", keep=True,
              deliver_to=["alice@local.test"])
    r = h.run()                                  # hauld -1 -d -c haul.conf
    r.check(h)            # exit 0/1 (no signal, no timeout), no secret
    r.delivered_uids()    # from "delivered uid U ..." lines
    r.sessions()          # parsed "session ended: ..." lines

Hauld.write() renders haul.conf (libconfuse syntax) from the settings;
password files are written 0600 and every password given to account() is
remembered as a secret that must never show up in hauld's output.

hauld and haul-milter refuse to run as root without a configured `user`.
When the tests run as root, render() adds `user = haulfix.daemon_user()` (an
unprivileged system user, created on first use) unless the test set
global_opts["user"] itself (None: leave it out), and write() gives the
Hauld's directory to that user (grant()), so the daemons, once they have
dropped to it, can read the password files and write the state.

SmtpSink wraps Postfix's smtp-sink(1): a working sink (every transaction
dumped to a file; with no fault options a dump means a 250) or a faulty one
(-r/-f/-q/-Q COMMANDS: 4xx/5xx/disconnect).  dumps() returns the dumped
messages; smtp-sink writes one per transaction, rejected ones included, so
only a sink without faults counts acceptances.
"""

import base64
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import haulfix

RUN_TIMEOUT = 30          # seconds for one `hauld -1`

_LOG_RE = re.compile(r"^hauld: (?P<level>[a-z]+): "
                     r"(?:account=(?P<account>[^:]+): )?(?P<msg>.*)$")
_DELIVERED_RE = re.compile(r"delivered uid (\S+) size (\d+)")
_SESSION_RE = re.compile(
    r"session ended: (\d+) fetched, (\d+) delivered, (\d+) refused, "
    r"(\d+) deleted(?:; error: (.*))?$")


def run_user():
    """The user to configure for hauld and haul-milter: haulfix's
    daemon_user() (created if missing) when we are root, else None (they
    run as we do)."""
    if os.geteuid() != 0:
        return None
    return haulfix.daemon_user()


def grant(path, user=None, recursive=True):
    """Root only: give everything root owns under path (path included) to
    user (run_user() by default), group unchanged, so a daemon that dropped
    to it reads and writes what the test prepared there.  What belongs to
    another user (smtp-sink's nobody, a fixture's mail user) is left alone,
    and the directories above path must already be traversable."""
    user = user or run_user()
    if user is None:
        return path
    uid = pwd.getpwnam(user).pw_uid

    def give(p):
        st = os.lstat(p)
        if st.st_uid == 0:
            os.lchown(p, uid, -1)
    give(path)
    if recursive and os.path.isdir(path) and not os.path.islink(path):
        for top, dirs, files in os.walk(path):
            for n in dirs + files:
                give(os.path.join(top, n))
    return path


def _q(s):
    return '"%s"' % str(s).replace("\\", "\\\\").replace('"', '\\"')


def _value(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, (list, tuple)):
        return "{" + ", ".join(_q(x) for x in v) + "}"
    return _q(v)


def write_secret_file(path, data, mode=0o600):
    """Create path with mode (before any byte is written).  As root, the
    file goes to run_user(): the daemons read secrets after dropping to
    it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data if isinstance(data, bytes) else data.encode())
    finally:
        os.close(fd)
    os.chmod(path, mode)
    if run_user():
        grant(path)
    return path


def make_key(path):
    """A signing key as hauld wants it: 32 random bytes, base64, one line,
    mode 0600."""
    key = base64.b64encode(secrets.token_bytes(32))
    register_secret(key.decode())
    return write_secret_file(path, key + b"\n")


# --------------------------------------------------------------------------
# Secrets registry (reliability.md I5): every password, token and signing
# key a test hands to hauld or haul-milter is registered here, every hauld
# run's output is kept, and run.py's final "secrets_in_logs" check greps
# all of it, plus every *.log file under the run's temp dir (daemon and
# milter logs), for any form of any secret.

SECRETS = {}             # secret -> set of user names (for SASL forms)
LOGS = []                # (label, text) of every hauld run (Run objects)
LOG_FILES = set()        # log files to read at the end (Daemon logs)


def register_secret(secret, user=None):
    """Remember a test secret (str) that must never be logged."""
    if secret:
        SECRETS.setdefault(secret, set()).add(user or "")


def register_log_file(path):
    LOG_FILES.add(path)


def secret_forms_all(secret, users=("",)):
    """What a leak of secret can look like in a log: itself, its base64
    (SASL LOGIN), the SASL PLAIN blob with and without authzid."""
    forms = {secret, base64.b64encode(secret.encode()).decode()}
    for u in users:
        for authz in ("", u):
            forms.add(base64.b64encode(("%s\0%s\0%s" % (
                authz, u, secret)).encode()).decode())
    return [f for f in forms if len(f) >= 6]


def secret_hits(secrets=None, logs=None, files=()):
    """[(where, form)] for every form of every secret found in logs
    ([(label, text)]) or files (paths; unreadable ones are skipped)."""
    secrets = SECRETS if secrets is None else secrets
    logs = LOGS if logs is None else logs
    forms = []
    for sec, users in secrets.items():
        forms += secret_forms_all(sec, sorted(users))
    hits = []
    texts = list(logs)
    for path in sorted(set(files) | LOG_FILES):
        try:
            with open(path, "rb") as f:
                texts.append((path, f.read().decode("utf-8", "replace")))
        except OSError:
            pass
    for label, text in texts:
        for form in forms:
            if form in text:
                hits.append((label, form[:3] + "..."))
    return hits


def _record_run(run):
    LOGS.append((" ".join(map(str, run.argv[-2:])), run.log + run.out))


class Run:
    """The outcome of one hauld invocation."""

    def __init__(self, argv, rc, log, out, elapsed, timed_out=False,
                 timeout=None):
        self.argv = argv
        self.timeout = timeout
        self.rc = rc            # exit status; negative: killed by a signal
        self.log = log          # stderr (the log stream)
        self.out = out          # stdout
        self.elapsed = elapsed
        self.timed_out = timed_out
        _record_run(self)

    def __repr__(self):
        return "<Run rc=%s %.1fs>" % (self.rc, self.elapsed)

    def tail(self, n=40):
        lines = self.log.splitlines()
        return "\n".join(lines[-n:])

    def lines(self, level=None, account=None, debug=False):
        """Parsed log lines: dicts level/account/msg.  Debug lines only
        when debug=True."""
        out = []
        for ln in self.log.splitlines():
            m = _LOG_RE.match(ln)
            if not m:
                continue
            d = m.groupdict()
            if d["level"] == "debug" and not debug and level != "debug":
                continue
            if level is not None and d["level"] != level:
                continue
            if account is not None and d["account"] != account:
                continue
            out.append(d)
        return out

    def messages(self, account=None):
        return [d["msg"] for d in self.lines(account=account)]

    def grep(self, pattern, flags=re.I):
        """Log lines (raw, debug included) matching the regex."""
        return [ln for ln in self.log.splitlines()
                if re.search(pattern, ln, flags)]

    def delivered_uids(self, account=None):
        out = []
        for msg in self.messages(account):
            m = _DELIVERED_RE.match(msg)
            if m:
                out.append(m.group(1))
        return out

    def sessions(self, account=None):
        """[{fetched, delivered, refused, deleted, error}] per session."""
        out = []
        for msg in self.messages(account):
            m = _SESSION_RE.search(msg)
            if m:
                out.append({"fetched": int(m.group(1)),
                            "delivered": int(m.group(2)),
                            "refused": int(m.group(3)),
                            "deleted": int(m.group(4)),
                            "error": m.group(5)})
        return out

    def session(self, account=None):
        s = self.sessions(account)
        assert len(s) == 1, "expected one session, got %r\n%s" % (
            s, self.tail())
        return s[0]

    def check(self, hauld=None, extra_secrets=(), rcs=(0, 1)):
        """hauld ended by itself (no timeout, no signal) with an exit code
        in rcs, and printed none of the secrets (those of hauld, a Hauld,
        plus the ones given)."""
        assert not self.timed_out, "hauld -1 did not finish in %gs " \
            "(killed)\n%s" % (self.timeout, self.tail())
        # Under `make asan` a sanitizer report is a failure whatever the
        # exit code says.
        for mark in ("Sanitizer", "runtime error:"):
            assert mark not in self.log, "sanitizer report:\n" + \
                self.log[self.log.find(mark) - 200:][:3000]
        assert self.rc >= 0, "hauld was killed by signal %d\n%s" % (
            -self.rc, self.tail())
        assert self.rc in (0, 1) and self.rc in rcs, \
            "hauld exit %d, expected %s\n%s" % (self.rc, rcs, self.tail())
        secrets = list(extra_secrets) + (list(hauld.secrets) if hauld else [])
        for s in secrets:
            for form in _secret_forms(s):
                assert form not in self.log and form not in self.out, \
                    "a test secret appears in hauld's output (%r)" % form
        return self


def _secret_forms(s):
    """The secret as is and base64-encoded (as SASL LOGIN sends it), so a
    logged AUTH line is caught too."""
    forms = {s, base64.b64encode(s.encode()).decode()}
    return [f for f in forms if len(f) >= 6]


class Hauld:
    """A hauld config under dir (state dir, key file, password files) and
    a runner for `hauld -1`."""

    def __init__(self, binary, dir, key=True, log_level=None):
        self.binary = binary
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.state_dir = os.path.join(dir, "state")
        self.conf = os.path.join(dir, "haul.conf")
        self.key_file = os.path.join(dir, "haul.key")
        if key:
            make_key(self.key_file)
        self.global_opts = {"state_dir": self.state_dir,
                            "key_file": self.key_file}
        if log_level:
            self.global_opts["log_level"] = log_level
        self.delivery_opts = {}
        self.accounts = {}
        self.secrets = set()
        self.runs = []

    # configuration
    def delivery(self, **opts):
        """Replace the delivery section (mode, target, lda_command, ...)."""
        self.delivery_opts = dict(opts)
        return self

    def smtp(self, port, host="127.0.0.1", mode="smtp", **opts):
        return self.delivery(mode=mode, target="%s:%d" % (host, port),
                             **opts)

    def lda(self, argv, **opts):
        return self.delivery(mode="lda", lda_command=list(argv), **opts)

    def account(self, name, password=None, **opts):
        """Add or replace an account.  password: written to a 0600 file
        (password_file) and remembered as a secret."""
        opts = dict(opts)
        opts.setdefault("protocol", "pop3")
        if password is not None:
            pw_file = os.path.join(self.dir, "%s.pass" % name)
            write_secret_file(pw_file, password + "\n")
            opts["password_file"] = pw_file
            self.secrets.add(password)
            register_secret(password, opts.get("user"))
            # what SASL PLAIN would send for it (LOGIN: see _secret_forms)
            user = opts.get("user", "")
            for authz in ("", user):
                self.secrets.add(base64.b64encode(
                    ("%s\0%s\0%s" % (authz, user, password)).encode())
                    .decode())
        self.accounts[name] = opts
        return self

    def update(self, name, **opts):
        self.accounts[name].update(opts)
        return self

    def render(self):
        opts = dict(self.global_opts)
        if "user" not in opts and run_user():
            opts["user"] = run_user()
        out = ["global {"]
        out += ["\t%s = %s" % (k, _value(v))
                for k, v in opts.items() if v is not None]
        out += ["}", "delivery {"]
        out += ["\t%s = %s" % (k, _value(v))
                for k, v in self.delivery_opts.items()]
        out.append("}")
        for name, opts in self.accounts.items():
            out.append("account %s {" % _q(name))
            out += ["\t%s = %s" % (k, _value(v)) for k, v in opts.items()]
            out.append("}")
        return "\n".join(out) + "\n"

    def write(self, path=None):
        path = path or self.conf
        with open(path, "w") as f:
            f.write(self.render())
        grant(self.dir)
        for p, whole_dir in self._temp_paths():
            grant(os.path.dirname(p) if whole_dir else p)
        return path

    def _temp_paths(self):
        """Files the config names outside self.dir but under the temp dir,
        which the daemon, once it dropped privileges, must read or run:
        [(path, whole_dir)].  whole_dir for a password_command or LDA
        program: what such a test script writes usually sits next to it
        (an output directory made before the run)."""
        tmp = os.path.realpath(tempfile.gettempdir())
        out = []
        for opts in [self.delivery_opts] + list(self.accounts.values()):
            for k, v in opts.items():
                prog = k in ("password_command", "lda_command")
                for x in (v[:1] if prog else v) if isinstance(
                        v, (list, tuple)) else [v]:
                    if not isinstance(x, str) or not x.startswith("/"):
                        continue
                    real = os.path.realpath(x)
                    # never /tmp itself
                    if os.path.isfile(real) and \
                            os.path.dirname(real) != tmp and \
                            real.startswith(tmp + os.sep) and \
                            not real.startswith(os.path.realpath(
                                self.dir) + os.sep):
                        out.append((real, prog))
        return out

    # running
    def check_config(self, path=None):
        """hauld -n -c CONF: (rc, output)."""
        path = self.write(path)
        r = _exec([self.binary, "-n", "-c", path], 15)
        return r.rc, r.log + r.out

    def run(self, debug=True, timeout=RUN_TIMEOUT, args=(), env=None):
        """hauld -1 [-d] -c CONF: a Run (never raises on failure: check
        it with Run.check())."""
        self.write()
        argv = [self.binary, "-1"] + (["-d"] if debug else []) + \
            list(args) + ["-c", self.conf]
        # `make valgrind` runs every hauld under a wrapper (valgrind,
        # logging to its own files), with room for the slowdown.
        wrapper = os.environ.get("HAUL_WRAPPER", "").split()
        if wrapper:
            argv = wrapper + argv
            timeout *= 10
        r = _exec(argv, timeout, env)
        self.runs.append(r)
        return r


def _exec(argv, timeout, env=None):
    """Run argv with output in temp files (an LDA child could hold a pipe
    open); on timeout kill its process group and report."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as err, tempfile.TemporaryFile() as out:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=err, env=env, start_new_session=True)
        timed_out = False
        try:
            rc = p.wait(timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            rc = p.wait(10)
        err.seek(0)
        out.seek(0)
        log = err.read().decode("utf-8", "replace")
        so = out.read().decode("utf-8", "replace")
    return Run(argv, rc, log, so, time.monotonic() - t0, timed_out,
               timeout)


# --------------------------------------------------------------------------
# smtp-sink


def free_port():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class SmtpSink:
    """Postfix's smtp-sink on 127.0.0.1:port, dumping every transaction
    into dir.  options: extra smtp-sink arguments, e.g. ["-r", "RCPT"]
    (4xx), ["-f", "."] (5xx after the data), ["-q", "."] (disconnect
    without a reply), ["-L"] (LMTP)."""

    def __init__(self, dir, options=(), port=None):
        self.dir = dir
        self.dump_dir = os.path.join(dir, "dump")
        os.makedirs(self.dump_dir, exist_ok=True)
        os.chmod(dir, 0o755)
        shutil.chown(self.dump_dir, "nobody")
        self.options = list(options)
        self.port = port or free_port()
        self.proc = None
        self._log = open(os.path.join(dir, "smtp-sink.log"), "wb")

    def start(self):
        argv = ["smtp-sink", "-u", "nobody", "-d",
                os.path.join(self.dump_dir, "m.")] + self.options + \
            ["127.0.0.1:%d" % self.port, "64"]
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=self._log)
        end = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("smtp-sink exited %d: %s" % (
                    self.proc.returncode, self.logs()))
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=1):
                    break
            except OSError:
                if time.monotonic() > end:
                    raise RuntimeError("smtp-sink did not start: " +
                                       self.logs())
                time.sleep(0.02)
        return self

    def logs(self):
        try:
            with open(os.path.join(self.dir, "smtp-sink.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def dumps(self):
        """Dumped transactions (bytes, LF line ends), oldest first."""
        out = []
        names = sorted(os.listdir(self.dump_dir),
                       key=lambda n: os.stat(
                           os.path.join(self.dump_dir, n)).st_mtime_ns)
        for n in names:
            with open(os.path.join(self.dump_dir, n), "rb") as f:
                out.append(f.read())
        return out

    def clear(self):
        for n in os.listdir(self.dump_dir):
            os.unlink(os.path.join(self.dump_dir, n))


# --------------------------------------------------------------------------
# Messages


def header(data, name):
    """First value of header name in data (unfolded), or None."""
    head = re.split(rb"\r?\n\r?\n", data, maxsplit=1)[0]
    m = re.search(rb"(?im)^" + re.escape(name.encode()) +
                  rb":[ \t]*(.*(?:\r?\n[ \t].*)*)", head)
    if not m:
        return None
    return re.sub(rb"\r?\n[ \t]+", b" ", m.group(1)).strip().decode(
        "latin-1")


def message_ids(datas):
    return [header(d, "Message-ID") for d in datas]


def lda_script(path, body):
    """Write an executable /bin/sh script (the LDA is execve'd, the
    interpreter comes from the #! line)."""
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body.rstrip("\n") + "\n")
    os.chmod(path, 0o755)
    return path
