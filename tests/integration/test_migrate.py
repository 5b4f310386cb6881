# ISC License; see LICENSE.
"""Migration from fetchmail (`haulctl import-fetchmail`).

1. The rc corpus (tests/fixtures/fetchmailrc/*.rc): each file converts,
   every warning names FILE:LINE, password files are 0600, and the
   generated fragments plus delivery block pass `hauld -n`.  Files named
   bad-*.rc must be refused with FILE:LINE.
2. The real thing: Debian's fetchmail fetches N messages from the private
   Dovecot (POP3S, keep) into an smtp-sink and writes .fetchids; haulctl
   imports its rc and ids; `hauld -1` with the generated configuration
   then delivers none of the N again, and exactly the M messages added
   afterwards.  The same for IMAP with keep: fetchmail keeps no UIDs but
   flags what it fetched \\Seen; the import writes first_fetch = unseen.
"""

import glob
import os
import re
import shutil
import stat
import subprocess

import haulfix
import hauldrun
from haulfix import Dovecot, Skip, timeout
from hauldrun import Hauld, SmtpSink, make_key, _exec, header

TIMEOUT = 60
SETUP_TIMEOUT = 60

USERS = {"mig": "Mig-pw-Zq8rK2vW", "migimap": "Migi-pw-Zq8rK2vW",
         "migall": "Miga-pw-Zq8rK2vW"}
CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "fixtures", "fetchmailrc")
N_OLD = 25
M_NEW = 7


def setup_module(env):
    haulfix.need_root()
    haulfix.need_binaries("dovecot", "smtp-sink", "openssl")
    env.need("hauld", "haulctl")
    env.fetchmail = shutil.which("fetchmail")
    if env.fetchmail is None:
        # .ci/deps.sh installs it; installing it here as a last resort
        # keeps a developer machine from skipping silently.
        if os.geteuid() == 0 and shutil.which("apt-get"):
            subprocess.run(["apt-get", "install", "-y", "-qq",
                            "--no-install-recommends", "fetchmail"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=120,
                           env=dict(os.environ,
                                    DEBIAN_FRONTEND="noninteractive"))
        env.fetchmail = shutil.which("fetchmail")
    env.dovecot = Dovecot(users=USERS)
    env.dovecot.start()


def teardown_module(env):
    d = getattr(env, "dovecot", None)
    if d is not None:
        d.close()


def haulctl(env, *args, check=True):
    p = subprocess.run([env.haulctl] + list(args), capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL)
    if check:
        assert p.returncode == 0, "haulctl %s: exit %d\n%s%s" % (
            " ".join(args), p.returncode, p.stdout, p.stderr)
    return p


def run_user():
    """The unprivileged user hauld must run as when we are root (if this
    tree's hauld drops privileges; see hauldrun), else None."""
    f = getattr(hauldrun, "run_user", None)
    return f() if f is not None else None


def grant(path):
    """Give what root created under path (the import's output and UID
    store included) to run_user(), as the import run as that user
    would have left it."""
    f = getattr(hauldrun, "grant", None)
    if f is not None:
        f(path)


def main_conf(dir, out, state, extra=""):
    """A haul.conf that includes what the import wrote."""
    key = os.path.join(dir, "haul.key")
    if not os.path.exists(key):
        make_key(key)
    user = run_user()
    path = os.path.join(dir, "haul.conf")
    with open(path, "w") as f:
        f.write('global {\n\tstate_dir = "%s"\n\tkey_file = "%s"\n%s}\n%s'
                'include("%s/fetchmail-delivery.inc", "%s/*.conf")\n'
                % (state, key, '\tuser = "%s"\n' % user if user else "",
                   extra, out, out))
    grant(dir)
    return path


# --------------------------------------------------------------------------
# the corpus


def _corpus():
    files = sorted(glob.glob(os.path.join(CORPUS, "*.rc")))
    assert len(files) >= 8, "the rc corpus is missing"
    return files


@timeout(40)
def test_corpus_converts_and_passes_hauld_check(env):
    ids = os.path.join(CORPUS, "fetchids")
    seen_warning = 0
    for rc in _corpus():
        name = os.path.basename(rc)
        if name.startswith("bad-"):
            continue
        work = os.path.join(env.tmpdir, name)
        os.makedirs(work)
        out = os.path.join(work, "accounts.d")
        state = os.path.join(work, "state")
        p = haulctl(env, "import-fetchmail", "--rc", rc, "--ids", ids,
                    "--out", out, "--state-dir", state,
                    "--domain", "example.org")
        # every warning names the rc file and a line
        for ln in p.stderr.splitlines():
            if "warning" in ln and not ln.startswith(ids):
                assert re.match(re.escape(rc) + r"(:\d+)?: warning: ", ln), \
                    "%s: warning without FILE:LINE: %r" % (name, ln)
                seen_warning += 1
        confs = glob.glob(os.path.join(out, "*.conf"))
        assert confs, "%s: no fragment written\n%s" % (name, p.stderr)
        for f in glob.glob(os.path.join(out, "*.pass")):
            assert stat.S_IMODE(os.stat(f).st_mode) == 0o600, f
        for f in confs:
            assert stat.S_IMODE(os.stat(f).st_mode) == 0o644, f
            text = open(f).read()
            # passwords never land in the configuration
            assert "Secret-" not in text, "%s: a password in %s" % (name, f)
        conf = main_conf(work, out, state)
        r = _exec([env.hauld, "-n", "-c", conf], 15)
        assert r.rc == 0 and "configuration OK" in r.out + r.log, \
            "%s: hauld -n failed:\n%s%s\n%s" % (
                name, r.out, r.log, "".join(open(f).read() for f in confs))
        # a second import refuses to overwrite
        p2 = haulctl(env, "import-fetchmail", "--rc", rc, "--ids", ids,
                     "--out", out, "--state-dir", state, check=False)
        assert p2.returncode == 1 and "--force" in p2.stderr, p2.stderr
    assert seen_warning > 10, "the corpus should exercise the warnings"


@timeout(20)
def test_corpus_errors_name_file_and_line(env):
    bad = [f for f in _corpus() if os.path.basename(f).startswith("bad-")]
    assert bad
    for rc in bad:
        out = os.path.join(env.tmpdir, os.path.basename(rc))
        p = haulctl(env, "import-fetchmail", "--rc", rc, "--ids",
                    "/dev/null", "--out", out, "--no-seed", check=False)
        assert p.returncode == 1, "%s accepted:\n%s" % (rc, p.stdout)
        assert re.match(re.escape(rc) + r":\d+: ", p.stderr), p.stderr
        assert not os.path.exists(out), "%s: wrote output" % rc


# --------------------------------------------------------------------------
# real fetchmail, then haul


def run_fetchmail(env, home, rc):
    """One fetchmail poll with HOME=home; returns its output."""
    p = subprocess.run([env.fetchmail, "-f", rc, "-i",
                        os.path.join(home, ".fetchids"), "-d0", "--nodetach",
                        "--nosyslog"],
                       env=dict(os.environ, HOME=home, FETCHMAILHOME=home),
                       capture_output=True, text=True, timeout=30,
                       stdin=subprocess.DEVNULL)
    # 0: mail fetched, 1: no mail
    assert p.returncode in (0, 1), "fetchmail exit %d:\n%s%s" % (
        p.returncode, p.stdout, p.stderr)
    return p.stdout + p.stderr


def message_ids(sink):
    return sorted(header(m, "Message-ID") for m in sink.dumps())


@timeout(90)
def test_fetchmail_keep_then_haul_redelivers_nothing(env):
    if env.fetchmail is None:
        raise Skip("fetchmail is not installed and could not be "
                   "installed (apt-get install fetchmail)")
    d = env.dovecot
    home = os.path.join(env.tmpdir, "home")
    os.makedirs(home)
    first = d.seed_n("mig", N_OLD)
    assert len(first) == N_OLD
    sink = SmtpSink(os.path.join(env.tmpdir, "sink")).start()
    try:
        rc = os.path.join(home, ".fetchmailrc")
        with open(rc, "w") as f:
            f.write('# fetchmail as the user had it\n'
                    'set daemon 300\nset no syslog\n'
                    'poll localhost with proto POP3 and port %d\n'
                    '\tuser "mig" there with password "%s" is "tester" here\n'
                    '\toptions keep ssl sslcertck sslcertfile "%s"\n'
                    '\tsmtphost 127.0.0.1/%d\n'
                    % (d.pop3s_port, USERS["mig"], d.ca_file, sink.port))
        os.chmod(rc, 0o600)
        log = run_fetchmail(env, home, rc)
        got = message_ids(sink)
        assert len(got) == N_OLD, "fetchmail delivered %d of %d\n%s" % (
            len(got), N_OLD, log[-2000:])
        with open(os.path.join(home, ".fetchids")) as f:
            ids = f.read().splitlines()
        assert len(ids) == N_OLD and all(
            l.startswith("mig@localhost ") for l in ids), ids[:3]
        assert d.count("mig") == N_OLD, "keep: mail must stay on the server"

        # import: fragments, password file, seeded store
        out = os.path.join(env.tmpdir, "accounts.d")
        state = os.path.join(env.tmpdir, "state")
        p = haulctl(env, "import-fetchmail", "--rc", rc, "--out", out,
                    "--state-dir", state,
                    "--ids", os.path.join(home, ".fetchids"))
        assert "seeded %d UIDs" % N_OLD in p.stdout, p.stdout + p.stderr
        frag = open(os.path.join(out, "mig_localhost.conf")).read()
        assert "enabled = yes" in frag and "keep = yes" in frag, frag
        assert USERS["mig"] not in frag
        pw = os.path.join(out, "mig_localhost.pass")
        assert open(pw).read() == USERS["mig"] + "\n"
        assert stat.S_IMODE(os.stat(pw).st_mode) == 0o600
        delivery = open(os.path.join(out, "fetchmail-delivery.inc")).read()
        assert "127.0.0.1:%d" % sink.port in delivery, delivery

        # hauld with exactly what the import wrote: nothing again
        conf = main_conf(env.tmpdir, out, state)
        sink.clear()
        h = Hauld(env.hauld, os.path.join(env.tmpdir, "h"), key=False)
        h.secrets.add(USERS["mig"])
        r = _exec([env.hauld, "-1", "-d", "-c", conf], 30)
        r.check(h)
        assert r.rc == 0, r.tail()
        assert sink.dumps() == [], "haul re-delivered %d messages\n%s" % (
            len(sink.dumps()), r.tail())
        s = r.sessions("mig_localhost")
        assert len(s) == 1 and s[0]["delivered"] == 0 and \
            s[0]["deleted"] == 0 and s[0]["error"] is None, (s, r.tail())
        assert d.count("mig") == N_OLD

        # new mail still arrives, exactly once
        d.seed_n("mig", M_NEW)
        r = _exec([env.hauld, "-1", "-d", "-c", conf], 30)
        r.check(h)
        new = message_ids(sink)
        assert len(new) == M_NEW, "expected %d new deliveries, got %d\n%s" \
            % (M_NEW, len(new), r.tail())
        assert not set(new) & set(got), "an old message came back"
        r = _exec([env.hauld, "-1", "-d", "-c", conf], 30)
        r.check(h)
        assert len(sink.dumps()) == M_NEW, "a second run re-delivered"
        assert d.count("mig") == N_OLD + M_NEW
    finally:
        sink.stop()


def imap_flags(d, user):
    """{uid: set of flags} of the user's INBOX, read without changing it."""
    out = {}
    with d.imap_session(user) as c:
        c.select("INBOX", readonly=True)
        typ, data = c.uid("FETCH", "1:*", "(UID FLAGS)")
        for item in data or []:
            if not item:
                continue
            m = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", item)
            if m:
                out[int(m.group(1))] = set(m.group(2).decode().split())
    return out


def imap_rc(home, d, user, sink, extra=""):
    rc = os.path.join(home, ".fetchmailrc-" + user)
    with open(rc, "w") as f:
        f.write('poll localhost proto imap port %d user %s '
                'password "%s" is tester here keep %sssl sslcertfile "%s" '
                'smtphost 127.0.0.1/%d\n'
                % (d.imaps_port, user, USERS[user], extra, d.ca_file,
                   sink.port))
    os.chmod(rc, 0o600)
    return rc


@timeout(90)
def test_fetchmail_imap_keep_then_haul_redelivers_nothing(env):
    """fetchmail keeps no UIDs for IMAP: it fetches what has no \\Seen and
    flags it (checked here, also that a second poll fetches nothing, and
    that with fetchall every poll delivers everything again).  The import
    writes first_fetch = unseen and leaves the account enabled; hauld
    then delivers none of the old mail, and new mail exactly once."""
    if env.fetchmail is None:
        raise Skip("fetchmail is not installed and could not be "
                   "installed (apt-get install fetchmail)")
    d = env.dovecot
    home = os.path.join(env.tmpdir, "home")
    os.makedirs(home)
    n_old = 5
    d.seed_n("migimap", n_old)
    # read in a mail client before fetchmail ever saw it
    d.seed("migimap", [haulfix.make_message(900, to="migimap@remote.test")],
           flags="S")
    d.seed_n("migall", 3)
    sink = SmtpSink(os.path.join(env.tmpdir, "sink")).start()
    try:
        # fetchall + keep: everything, at every poll
        rc_all = imap_rc(home, d, "migall", sink, "fetchall ")
        run_fetchmail(env, home, rc_all)
        run_fetchmail(env, home, rc_all)
        assert len(sink.dumps()) == 6, "fetchall+keep: expected 3 x 2"
        assert all("\\Seen" in f for f in imap_flags(d, "migall").values())
        sink.clear()

        rc = imap_rc(home, d, "migimap", sink)
        log = run_fetchmail(env, home, rc)
        got = message_ids(sink)
        assert len(got) == n_old, log[-2000:]
        flags = imap_flags(d, "migimap")
        assert len(flags) == n_old + 1 and all(
            "\\Seen" in f for f in flags.values()), flags
        run_fetchmail(env, home, rc)
        assert len(sink.dumps()) == n_old, "fetchmail fetched \\Seen mail"
        ids = os.path.join(home, ".fetchids")
        assert not os.path.exists(ids) or "migimap@" not in open(ids).read()

        out = os.path.join(env.tmpdir, "accounts.d")
        state = os.path.join(env.tmpdir, "state")
        p = haulctl(env, "import-fetchmail", "--rc", rc, "--out", out,
                    "--state-dir", state, "--ids", "/dev/null")
        frag = open(os.path.join(out, "migimap_localhost.conf")).read()
        assert "enabled = yes" in frag and "keep = yes" in frag and \
            "first_fetch = unseen" in frag, frag
        assert re.search(re.escape(rc) + r":1: warning: account "
                         r"migimap_localhost: IMAP with keep.*first_fetch = "
                         r"unseen", p.stderr), p.stderr

        conf = main_conf(env.tmpdir, out, state)
        sink.clear()
        h = Hauld(env.hauld, os.path.join(env.tmpdir, "h"), key=False)
        h.secrets.add(USERS["migimap"])
        r = _exec([env.hauld, "-1", "-d", "-c", conf], 30)
        r.check(h)
        assert r.rc == 0, r.tail()
        assert sink.dumps() == [], "haul re-delivered %d messages\n%s" % (
            len(sink.dumps()), r.tail())
        assert r.grep(r"first contact \(first_fetch = unseen\): %d "
                      r"messages recorded" % (n_old + 1)), r.tail()
        assert d.count("migimap") == n_old + 1

        # new mail (one of it already read elsewhere) arrives exactly once
        d.seed_n("migimap", M_NEW)
        d.seed("migimap", [haulfix.make_message(
            901, to="migimap@remote.test")], flags="S")
        r = _exec([env.hauld, "-1", "-d", "-c", conf], 30)
        r.check(h)
        new = message_ids(sink)
        assert len(new) == M_NEW + 1, "expected %d new deliveries, got " \
            "%d\n%s" % (M_NEW + 1, len(new), r.tail())
        assert not set(new) & set(got), "an old message came back"
        r = _exec([env.hauld, "-1", "-d", "-c", conf], 30)
        r.check(h)
        assert len(sink.dumps()) == M_NEW + 1, "a second run re-delivered"
        assert d.count("migimap") == n_old + 1 + M_NEW + 1
    finally:
        sink.stop()
