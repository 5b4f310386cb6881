# ISC License; see LICENSE.
"""clients: how the benchmark runs each fetcher (Python 3 stdlib only).

Every client fetches the same mailbox from the private Dovecot over
implicit TLS (POP3S or IMAPS), verifying the server certificate against
the test CA, and delivers every message to the same smtp-sink on
loopback.  Each class writes its configuration into a fresh directory and
returns the command line; nothing is tuned beyond what a user would set
to get that job done (the defaults of each program otherwise).

    limit     bench/limit (C): reads and discards, delivers nothing
    hauld     hauld -1 -c haul.conf; SMTP to the sink
    fetchmail fetchmail -f rc (sslcertck sslcertfile); SMTP to the sink
    fdm       fdm fetch; SMTP to the sink.  fdm 1.9 has no CA file option:
              `set verify-certificates` with SSL_CERT_FILE=CA (OpenSSL's
              default verify file); it checks the chain but not the host
              name
    getmail6  getmail; no SMTP delivery: MDA_lmtp to the sink speaking
              LMTP (smtp-sink -L)
    mpop      mpop (POP3 only); no SMTP or LMTP delivery: `delivery mda`
              runs msmtp (SMTP to the sink) once per message
"""

import base64
import os


def daemon_user():
    """The user hauld and haul-milter drop to when started as root (both
    refuse to run as root without one): the test fixtures' daemon user
    where haulfix has one, else nobody."""
    import haulfix
    if hasattr(haulfix, "daemon_user"):
        return haulfix.daemon_user()
    return "nobody"


def grant(path, user):
    """chown to user everything root owns under path (path included), so
    a daemon that dropped to user reads and writes it."""
    import pwd
    uid = pwd.getpwnam(user).pw_uid
    for top, dirs, files in os.walk(path):
        for n in [""] + dirs + files:
            p = os.path.join(top, n) if n else top
            if os.lstat(p).st_uid == 0:
                os.lchown(p, uid, -1)
    return path


def write(path, text, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    return path


class Job:
    """What one client run needs to know.

    proto: "pop3" | "imap"; keep: bool; host/hostname/port: the server
    (hostname is the name in its certificate); ca_file; user, password;
    sink_port (SMTP) and lmtp_port (LMTP sink, getmail6); dir: a fresh
    directory for this run; max_size: bytes (big-message runs); idle: a
    daemon that waits for new mail (IDLE latency) instead of one pass."""

    def __init__(self, **kw):
        self.idle = False
        self.max_size = 0
        self.lmtp_port = None
        self.__dict__.update(kw)


class Client:
    name = "?"
    protocols = ("pop3", "imap")
    delivery = "smtp"          # smtp | lmtp | none
    note = ""
    idle = False               # can do IMAP IDLE

    def __init__(self, bench):
        self.bench = bench     # paths: build dir, binaries

    def available(self):
        return True

    def prepare(self, job):
        """Write config files into job.dir; return (argv, env, shown)
        where shown is [(file name, text)] for the report (no secrets)."""
        raise NotImplementedError

    @staticmethod
    def redact(text, job):
        return text.replace(job.password, "********")

    def version(self):
        return _pkg_version(self.package) if self.package else ""

    package = None


def _pkg_version(pkg):
    import subprocess
    try:
        r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg],
                           capture_output=True, text=True, timeout=10)
    except OSError:
        return "?"
    return "%s %s (Debian)" % (pkg, r.stdout.strip() or "?")


def _which(prog):
    for d in os.environ.get("PATH", "/usr/bin:/bin").split(":") + \
            ["/usr/sbin", "/sbin"]:
        p = os.path.join(d, prog)
        if os.access(p, os.X_OK):
            return p
    return None


def _env(**extra):
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C",
           "HOME": extra.pop("HOME", "/nonexistent")}
    env.update(extra)
    return env


class Limit(Client):
    name = "limit"
    delivery = "none"
    note = "reads and discards (one UID FETCH 1:* BODY.PEEK[]; POP3 RETR " \
        "pipelined, 64 in flight)"

    def available(self):
        return os.access(self.bench.limit, os.X_OK)

    def prepare(self, job):
        pw = write(os.path.join(job.dir, "password"), job.password + "\n")
        argv = [self.bench.limit, "-p", job.proto, "-H", job.host,
                "-N", job.hostname, "-P", str(job.port), "-C", job.ca_file,
                "-u", job.user, "-w", pw]
        return argv, _env(), []


class Hauld(Client):
    name = "hauld"
    idle = True
    note = "default settings"

    def available(self):
        return os.access(self.bench.hauld, os.X_OK)

    def config(self, job):
        pw = write(os.path.join(job.dir, "%s.pass" % job.user),
                   job.password + "\n")
        key = getattr(job, "key_file", None) or write(
            os.path.join(job.dir, "haul.key"),
            base64.b64encode(os.urandom(32)).decode() + "\n")
        acct = [
            "protocol = %s" % job.proto,
            'host = "%s"' % job.hostname,
            "port = %d" % job.port,
            "tls = implicit",
            'ca_file = "%s"' % job.ca_file,
            'user = "%s"' % job.user,
            'password_file = "%s"' % pw,
            "keep = %s" % ("yes" if job.keep else "no"),
            'deliver_to = {"%s@local.test"}' % job.user,
        ]
        if job.max_size:
            acct.append("max_message_size = %dM" %
                        ((2 * job.max_size >> 20) + 1))
        if job.proto == "imap":
            acct.append("idle = %s" % ("yes" if job.idle else "no"))
        target = getattr(job, "smtp_target", None) or \
            "127.0.0.1:%d" % job.sink_port
        delivery = ["mode = smtp", 'target = "%s"' % target]
        delivery += getattr(job, "delivery_extra", [])
        text = "global {\n"
        if os.geteuid() == 0:
            text += '\tuser = "%s"\n' % daemon_user()
        text += '\tstate_dir = "%s"\n' % os.path.join(job.dir, "state")
        text += '\tkey_file = "%s"\n' % key
        text += '\tcontrol_socket = "%s"\n' % os.path.join(job.dir,
                                                            "hauld.sock")
        text += "}\ndelivery {\n%s}\n" % "".join("\t%s\n" % l
                                                  for l in delivery)
        text += getattr(job, "extra_sections", "")
        text += 'account "bench" {\n%s}\n' % "".join("\t%s\n" % l
                                                    for l in acct)
        conf = write(os.path.join(job.dir, "haul.conf"), text, 0o644)
        if os.geteuid() == 0:
            grant(job.dir, daemon_user())
            if getattr(job, "key_file", None):
                grant(job.key_file, daemon_user())
        return conf, text

    def prepare(self, job):
        conf, text = self.config(job)
        argv = [self.bench.hauld, "-f" if job.idle else "-1", "-c", conf]
        return argv, _env(), [("haul.conf", text)]

    def version(self):
        return "hauld (this tree, %s)" % self.bench.hauld


class Fetchmail(Client):
    name = "fetchmail"
    package = "fetchmail"
    idle = True
    note = "SMTP to the sink (smtphost)"

    def available(self):
        return _which("fetchmail") is not None

    def prepare(self, job):
        home = os.path.join(job.dir, "home")
        os.makedirs(home, exist_ok=True)
        opts = ["ssl", "sslcertck", 'sslcertfile "%s"' % job.ca_file,
                "keep" if job.keep else "nokeep"]
        if not job.idle:
            opts.append("fetchall")
        else:
            opts.append("idle")
        text = ("set no bouncemail\nset no syslog\n"
                "poll %s protocol %s port %d\n"
                '  user "%s" there with password "%s" is "%s@local.test" '
                "here\n  options %s\n  smtphost \"127.0.0.1/%d\"\n"
                % (job.hostname, job.proto.upper(), job.port, job.user,
                   job.password, job.user, " ".join(opts), job.sink_port))
        rc = write(os.path.join(job.dir, "fetchmailrc"), text)
        argv = [_which("fetchmail"), "-f", rc, "--nosyslog",
                "--pidfile", os.path.join(home, "pid"),
                "--idfile", os.path.join(home, "fetchids")]
        if job.idle:
            argv += ["--daemon", "900", "--nodetach"]
        return argv, _env(FETCHMAILHOME=home, HOME=home), \
            [("fetchmailrc", self.redact(text, job))]



class Fdm(Client):
    name = "fdm"
    package = "fdm"
    note = "SMTP to the sink; chain verified (SSL_CERT_FILE), host name " \
        "not checked (fdm 1.9)"

    def available(self):
        return _which("fdm") is not None

    def prepare(self, job):
        kind = "pop3s" if job.proto == "pop3" else "imaps"
        text = ('set lock-file "%s"\n' % os.path.join(job.dir, "fdm.lock") +
                "set verify-certificates\n")
        if job.max_size:
            text += "set maximum-size %dM\n" % ((2 * job.max_size >> 20) + 1)
        text += ('account "bench" %s server "%s" port %d user "%s" '
                 'pass "%s"%s\n' % (kind, job.hostname, job.port, job.user,
                                    job.password,
                                    " keep" if job.keep else ""))
        text += ('action "sink" smtp server "127.0.0.1" port "%d" '
                 'to "%s@local.test"\nmatch all action "sink"\n'
                 % (job.sink_port, job.user))
        conf = write(os.path.join(job.dir, "fdm.conf"), text)
        argv = [_which("fdm"), "-q", "-f", conf, "fetch"]
        return argv, _env(SSL_CERT_FILE=job.ca_file, HOME=job.dir), \
            [("fdm.conf", self.redact(text, job))]



class Getmail(Client):
    name = "getmail6"
    package = "getmail6"
    delivery = "lmtp"
    note = "no SMTP delivery: MDA_lmtp to the sink speaking LMTP"

    def available(self):
        return _which("getmail") is not None

    def prepare(self, job):
        gdir = os.path.join(job.dir, "getmail")
        os.makedirs(gdir, exist_ok=True)
        if job.proto == "pop3":
            retr = "type = SimplePOP3SSLRetriever\n"
        else:
            retr = 'type = SimpleIMAPSSLRetriever\nmailboxes = ("INBOX",)\n'
        text = ("[retriever]\n" + retr +
                "server = %s\nport = %d\nusername = %s\npassword = %s\n"
                "ca_certs = %s\n\n[destination]\ntype = MDA_lmtp\n"
                "host = 127.0.0.1\nport = %d\noverride = %s@local.test\n\n"
                "[options]\nread_all = true\ndelete = %s\nverbose = 0\n"
                % (job.hostname, job.port, job.user, job.password,
                   job.ca_file, job.lmtp_port, job.user,
                   "false" if job.keep else "true"))
        rc = write(os.path.join(gdir, "getmailrc"), text)
        argv = [_which("getmail"), "--getmaildir", gdir, "--rcfile", rc]
        return argv, _env(HOME=job.dir), \
            [("getmailrc", self.redact(text, job))]



class Mpop(Client):
    name = "mpop"
    protocols = ("pop3",)
    note = "POP3 only; no SMTP/LMTP delivery: `delivery mda` runs msmtp " \
        "(SMTP to the sink) per message"

    def available(self):
        return _which("mpop") is not None and _which("msmtp") is not None

    def prepare(self, job):
        mda = "%s --host=127.0.0.1 --port=%d --from=bench@remote.test " \
            "%s@local.test" % (_which("msmtp"), job.sink_port, job.user)
        text = ("defaults\ntls on\ntls_starttls off\ntls_trust_file %s\n"
                "account bench\nhost %s\nport %d\nuser %s\npassword %s\n"
                "keep %s\nonly_new off\nuidls_file %s\ndelivery mda %s\n"
                % (job.ca_file, job.hostname, job.port, job.user,
                   job.password, "on" if job.keep else "off",
                   os.path.join(job.dir, "uidls"), '"%s"' % mda))
        rc = write(os.path.join(job.dir, "mpoprc"), text)
        argv = [_which("mpop"), "-C", rc, "-q", "bench"]
        return argv, _env(HOME=job.dir), \
            [("mpoprc", self.redact(text, job))]

    def version(self):
        return _pkg_version("mpop") + "; " + _pkg_version("msmtp")


ALL = [Limit, Hauld, Fetchmail, Fdm, Getmail, Mpop]
PEERS = ["fetchmail", "fdm", "getmail6", "mpop"]
