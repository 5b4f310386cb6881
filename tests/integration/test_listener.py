# ISC License; see LICENSE.
"""hauld's listeners when accept() fails (EMFILE).

A connection waiting in the backlog keeps a listening socket readable; if
accept fails and the listener stays enabled, the event loop retries at
once, forever (100 % CPU).  hauld pauses the listener for a second on an
accept error.  The test starts hauld with a descriptor limit of 20, fills the spare ones
with control clients, queues more,
and checks that hauld stays nearly idle, says why, and serves the control
socket again once descriptors are free.
"""

import os
import socket
import subprocess
import time

from haulfix import timeout
from hauldrun import Hauld, SmtpSink
from imaprun import Daemon

NOFILE = 20


def _cpu_ticks(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])       # utime + stime


@timeout(40)
def test_accept_failure_does_not_spin(env):
    with SmtpSink(os.path.join(env.tmpdir, "sink")) as sink:
        h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "l"))
        h.smtp(sink.port)
        # Start hauld with a small descriptor limit (a wrapper: prlimit on
        # a running process that changed its uid needs CAP_SYS_RESOURCE).
        wdir = os.path.join(env.tmpdir, "wrap")
        os.makedirs(wdir, exist_ok=True)
        real = h.binary
        wrap = os.path.join(wdir, "hauld")
        with open(wrap, "w") as f:
            f.write("#!/bin/sh\nulimit -n %d\nexec %s \"$@\"\n"
                    % (NOFILE, real))
        os.chmod(wrap, 0o755)
        os.symlink(os.path.join(os.path.dirname(real), "haulctl"),
                   os.path.join(wdir, "haulctl"))
        h.binary = wrap
        dm = Daemon(h, debug=False)
        held, queued = [], []
        try:
            pid = dm.proc.pid
            path = h.global_opts["control_socket"]
            for _ in range(NOFILE + 4):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(path)             # the backlog takes them all
                held.append(s)
            dm.wait_log(r"control socket: accept: .*not accepting", t=10)
            hz = os.sysconf("SC_CLK_TCK")
            t0, c0 = time.monotonic(), _cpu_ticks(pid)
            time.sleep(2.0)
            used = (_cpu_ticks(pid) - c0) / hz / (time.monotonic() - t0)
            assert used < 0.3, "hauld spun at %.0f %% CPU" % (used * 100)
            for s in held:
                s.close()
            held = []
            # Descriptors free again: the paused listener comes back.
            end = time.monotonic() + 10
            while True:
                r = dm.ctl("status", "--json")
                if r.returncode == 0:
                    break
                assert time.monotonic() < end, r.stderr
                time.sleep(0.2)
            assert dm.stop() == 0
        finally:
            for s in held + queued:
                s.close()
            dm.close()
