# ISC License; see LICENSE.
"""Who the daemons run as.  Started as root, hauld and haul-milter refuse
to run without a configured user; with one they open their sockets, pid
file and state directory as root, then become that user for good (read
from /proc/PID/status) and still fetch, deliver and answer haulctl.  Not
root, they refuse a user they cannot become.  Uses the fake POP3 server
and smtp-sink; root only."""

import grp
import os
import pwd
import signal
import subprocess
import time

import fakepki
import haulfix
from fakepop3 import FakePOP3, sample_messages
from hauldrun import Hauld, SmtpSink, grant, run_user
from imaprun import Daemon

TIMEOUT = 60


def setup_module(env):
    haulfix.need_root()
    env.pki = fakepki.make_pki(os.path.join(env.tmpdir, "pki"))


def _hauld(env, srv, sink, name="h", **glob):
    h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, name))
    h.global_opts["control_socket"] = os.path.join(h.dir, "ctl.sock")
    h.global_opts.update(glob)
    h.smtp(sink.port)
    h.account("acme", password="p-Zq81x", host="localhost", port=srv.port,
              tls="implicit", ca_file=env.pki.ca_cert, user="u", keep=False,
              deliver_to=["alice@local.test"], poll_interval=3600)
    return h


def _ids(pid):
    """(uids, gids, groups) from /proc/PID/status: real, effective, saved
    and filesystem ids, and the supplementary groups."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = [int(x) for x in v.split()] if k in (
                "Uid", "Gid", "Groups") else v.strip()
    return out["Uid"], out["Gid"], out["Groups"]


def test_root_without_user_is_refused(env):
    h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "h"))
    h.global_opts["user"] = None          # the harness would add one
    h.global_opts["control_socket"] = os.path.join(h.dir, "ctl.sock")
    h.global_opts["pid_file"] = os.path.join(h.dir, "hauld.pid")
    h.smtp(25)
    h.account("acme", password="p-Zq81x", host="localhost", port=995,
              user="u", deliver_to=["alice@local.test"])
    for args in ((), ("-f",)):
        r = subprocess.run([h.binary] + list(args) + ["-c", h.write()],
                           capture_output=True, text=True, timeout=15)
        assert r.returncode == 1, r
        assert "refusing to run as root: set user" in r.stderr, r.stderr
    # refused before it created or opened anything
    for p in ("state", "ctl.sock", "hauld.pid"):
        assert not os.path.exists(os.path.join(h.dir, p)), p
    r = h.run()
    assert r.rc == 1 and r.grep("refusing to run as root"), r.tail()
    # a configuration check may run as root
    rc, out = h.check_config()
    assert rc == 0 and "configuration OK" in out, out
    # user = root is no way around it
    h.global_opts["user"] = "root"
    r = h.run()
    assert r.rc == 1 and r.grep("user root is root"), r.tail()


def test_hauld_drops_to_user_fetches_and_answers(env):
    user = run_user()
    pw = pwd.getpwnam(user)
    msgs = sample_messages(5)
    with FakePOP3(msgs, users={"u": "p-Zq81x"}, tls="implicit",
                  certfile=env.pki.cert, keyfile=env.pki.key) as srv, \
            SmtpSink(os.path.join(env.tmpdir, "sink")) as sink:
        h = _hauld(env, srv, sink)
        h.global_opts["pid_file"] = os.path.join(h.dir, "hauld.pid")
        assert h.global_opts.get("user") is None   # the harness's default
        assert "\tuser = \"%s\"" % user in h.render()
        with Daemon(h, debug=False) as d:
            uids, gids, groups = _ids(d.proc.pid)
            assert uids == [pw.pw_uid] * 4, uids
            assert gids == [pw.pw_gid] * 4, gids
            assert 0 not in groups, groups
            with open(h.global_opts["pid_file"]) as f:
                assert int(f.read()) == d.proc.pid
            # A second hauld finds the pid file locked: it stops, and
            # leaves the running one's file alone.
            r2 = subprocess.run([h.binary, "-f", "-c", h.conf],
                                capture_output=True, text=True, timeout=20)
            assert r2.returncode == 1, (r2.returncode, r2.stderr)
            assert "another hauld is running" in r2.stderr, r2.stderr
            with open(h.global_opts["pid_file"]) as f:
                assert int(f.read()) == d.proc.pid
            # the control socket was made as root, before the drop
            st = os.stat(h.global_opts["control_socket"])
            assert st.st_uid == 0 and st.st_mode & 0o777 == 0o660, st
            r = d.ctl("fetch", "acme")
            assert r.returncode == 0, r.stderr
            d.wait(lambda s: s["acme"]["delivered"] == 5, "5 delivered")
            assert d.status()["acme"]["state"] == "idle"
            assert len(sink.dumps()) == 5
            assert srv.dele_count() == 5
            assert d.wait_log(r"running as user %s \(uid %d, gid %d\)" % (
                user, pw.pw_uid, pw.pw_gid))
            assert d.stop() == 0, d.tail()
        log = d.text()
        assert "p-Zq81x" not in log
    # the state directory was created for the user, the store by it
    state = h.global_opts["state_dir"]
    st = os.lstat(state)
    assert (st.st_uid, st.st_mode & 0o777) == (pw.pw_uid, 0o700), st
    db = os.path.join(state, "haul.db")
    st = os.lstat(db)
    assert (st.st_uid, st.st_mode & 0o777) == (pw.pw_uid, 0o600), st


def test_state_dir_of_another_user_is_refused(env):
    """An existing state_dir is never chowned: it must be the user's."""
    h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "h"))
    # outside h.dir, which write() gives to the user
    h.global_opts["state_dir"] = os.path.join(env.tmpdir, "rootstate")
    h.smtp(25)
    h.account("acme", password="p-Zq81x", host="localhost", port=995,
              user="u", deliver_to=["alice@local.test"])
    os.makedirs(h.global_opts["state_dir"], mode=0o700)
    os.chown(h.global_opts["state_dir"], 0, 0)
    r = h.run()
    assert r.rc == 1, r.tail()
    assert r.grep(r"state_dir: .* belongs to uid 0, not to %s .*chown -R"
                  % run_user()), r.tail()
    assert os.stat(h.global_opts["state_dir"]).st_uid == 0


def test_not_root_cannot_become_another_user(env):
    """Started as nobody with user = haul: refused, not half-run."""
    nobody = pwd.getpwnam("nobody")
    h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "h"))
    h.smtp(25)
    # a command, not a file: nobody could not read the user's 0600 file
    h.account("acme", password_command=["/bin/true"], host="localhost",
              port=995, user="u", deliver_to=["alice@local.test"])
    h.write()
    os.chmod(h.dir, 0o755)

    def become_nobody():
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    r = subprocess.run([h.binary, "-1", "-c", h.conf], capture_output=True,
                       text=True, timeout=15, preexec_fn=become_nobody)
    assert r.returncode == 1, r
    assert "cannot become %s" % run_user() in r.stderr, r.stderr


def test_milter_refuses_root_and_drops_to_user(env):
    milter = env.need("haul-milter")
    user = run_user()
    pw = pwd.getpwnam(user)
    d = os.path.join(env.tmpdir, "m")
    h = Hauld(env.need("hauld"), d)
    sock = os.path.join(d, "m.sock")
    h.smtp(25)
    h.account("acme", password="p-Zq81x", host="localhost", port=995,
              user="u", deliver_to=["alice@local.test"])

    def conf(**opts):
        with open(h.write(), "a") as f:
            f.write("milter {\n\tsocket = \"unix:%s\"\n" % sock +
                    "".join("\t%s = \"%s\"\n" % kv for kv in opts.items())
                    + "}\n")
        return h.conf
    r = subprocess.run([milter, "-f", "-c", conf()], capture_output=True,
                       text=True, timeout=15)
    assert r.returncode == 1, r
    assert "refusing to run as root: set milter.user" in r.stderr, r.stderr
    assert not os.path.exists(sock)
    group = "postfix" if _group_exists("postfix") else user
    log = open(os.path.join(d, "milter.log"), "w+b")
    p = subprocess.Popen([milter, "-f", "-c", conf(user=user, group=group)],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    try:
        end = time.monotonic() + 10
        while not os.path.exists(sock):
            assert p.poll() is None and time.monotonic() < end, \
                _read(log)
            time.sleep(0.02)
        end = time.monotonic() + 10
        while b"running as user" not in _read(log):
            assert p.poll() is None and time.monotonic() < end, \
                _read(log)
            time.sleep(0.02)
        uids, gids, groups = _ids(p.pid)
        gid = grp.getgrnam(group).gr_gid
        assert uids == [pw.pw_uid] * 4, uids
        assert gids == [gid] * 4, gids
        assert 0 not in groups, groups
        st = os.stat(sock)
        assert (st.st_uid, st.st_gid) == (pw.pw_uid, gid), st
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(15)
        log.close()
    assert rc == 0
    # the user could remove its socket: the directory is its (grant())
    assert not os.path.exists(sock)


def _group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def _read(f):
    f.flush()
    with open(f.name, "rb") as g:
        return g.read()


def test_grant_leaves_other_users_files_alone(env):
    """The harness helper itself: root's files go to the daemon user,
    another user's stay theirs."""
    d = os.path.join(env.tmpdir, "g")
    os.makedirs(os.path.join(d, "sub"))
    open(os.path.join(d, "sub", "f"), "w").close()
    other = os.path.join(d, "nobodys")
    open(other, "w").close()
    nobody = pwd.getpwnam("nobody").pw_uid
    os.chown(other, nobody, -1)
    grant(d)
    uid = pwd.getpwnam(run_user()).pw_uid
    for p in (d, os.path.join(d, "sub"), os.path.join(d, "sub", "f")):
        assert os.lstat(p).st_uid == uid, p
    assert os.lstat(other).st_uid == nobody
