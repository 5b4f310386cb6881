# ISC License; see LICENSE.
"""procs: measuring processes for the benchmark (Python 3 stdlib only).

- run_measured(): run one program to its end (or to a time cap) and return
  its wall time, CPU seconds and peak RSS from os.wait4() (the program and
  every descendant it waited for: mpop's msmtp children count as mpop).
- GroupCPU: CPU seconds used by a daemon's whole process group between two
  samples (Dovecot, Postfix): the live members' utime+stime from
  /proc/PID/stat plus the master's cutime+cstime, which holds every child
  the master reaped in between.  A child that ran before the first sample
  and exited before the second is counted only for its share in between,
  because it was counted live in the first sample.
- Sink: Postfix's smtp-sink (SMTP, or LMTP with -L) dumping every
  transaction into a directory; stop() returns its own CPU and peak RSS.
- Watcher: when does a new file appear (closed) in a directory: inotify
  (ctypes), for the IDLE latency rounds.
"""

import ctypes
import ctypes.util
import os
import re
import select
import signal
import socket
import struct
import subprocess
import time

TCK = os.sysconf("SC_CLK_TCK")


class Result:
    """One measured program run."""

    def __init__(self, argv, rc, wall, cpu, utime, stime, maxrss_kb,
                 capped=False, log=None):
        self.argv = argv
        self.rc = rc
        self.wall = wall
        self.cpu = cpu
        self.utime = utime
        self.stime = stime
        self.maxrss_kb = maxrss_kb
        self.capped = capped
        self.log = log

    def __repr__(self):
        return "<Result rc=%s wall=%.3f cpu=%.3f rss=%dKB%s>" % (
            self.rc, self.wall, self.cpu, self.maxrss_kb,
            " capped" if self.capped else "")


def _kill_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def run_measured(argv, log_path, env=None, cap=None, cwd=None,
                 on_cap=None, runner=None):
    """Run argv in its own session, output to log_path; wait until it
    exits or cap seconds passed.  At the cap, on_cap() is called first
    (to count what was done by then), then the session gets SIGTERM and,
    two seconds later, SIGKILL.  Returns a Result (wall: start to exit, or
    to the cap).

    runner: bench/runner (C) to start argv through, so that the peak RSS
    is the program's: a child forked by this (30 MB) Python process
    inherits its RSS into ru_maxrss (see runner.c).  Without it, or if
    the runner was killed, maxrss_kb is None."""
    ru_file = log_path + ".rusage"
    full = ([runner, ru_file] + list(argv)) if runner else list(argv)
    with open(log_path, "ab") as log:
        t0 = time.monotonic()
        p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=log,
                             stderr=log, env=env, cwd=cwd,
                             start_new_session=True)
    capped = False
    end = t0 + cap if cap else None
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            wall = time.monotonic() - t0
            break
        now = time.monotonic()
        if end is not None and now >= end:
            capped = True
            wall = now - t0
            if on_cap is not None:
                on_cap()
            _kill_group(p.pid, signal.SIGTERM)
            deadline = time.monotonic() + 2.0
            while True:
                pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                if pid == p.pid:
                    break
                if time.monotonic() > deadline:
                    _kill_group(p.pid, signal.SIGKILL)
                    pid, status, ru = os.wait4(p.pid, 0)
                    break
                time.sleep(0.01)
            break
        time.sleep(0.002 if now - t0 < 1 else 0.01)
    # Whatever the program left in its session (a daemonized helper).
    _kill_group(p.pid, signal.SIGKILL)
    rc = os.waitstatus_to_exitcode(status)
    utime, stime, rss = ru.ru_utime, ru.ru_stime, None
    if runner:
        try:
            with open(ru_file) as f:
                got = dict(kv.split("=") for kv in f.read().split())
            rc = int(got["rc"])
            utime, stime = float(got["utime"]), float(got["stime"])
            rss = int(got["maxrss_kb"])
        except (OSError, KeyError, ValueError):
            pass
    else:
        rss = ru.ru_maxrss
    return Result(argv, rc, wall, utime + stime, utime, stime, rss,
                  capped, log_path)


def _stat(pid):
    """(pgrp, utime+stime, cutime+cstime) in seconds, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (OSError, ValueError):
        return None
    r = data[data.rfind(")") + 2:].split()
    return (int(r[2]), (int(r[11]) + int(r[12])) / TCK,
            (int(r[13]) + int(r[14])) / TCK)


def proc_cpu(pid):
    """utime+stime of one live process (all its threads), or 0."""
    st = _stat(pid)
    return st[1] if st else 0.0


class GroupCPU:
    """CPU seconds of a daemon's process group (see the module doc)."""

    def __init__(self, master_pid):
        self.master = master_pid

    def sample(self):
        total = 0.0
        for name in os.listdir("/proc"):
            if not name.isdigit():
                continue
            st = _stat(int(name))
            if st is None or st[0] != self.master:
                continue
            total += st[1]
            if int(name) == self.master:
                total += st[2]
        return total

    def settle(self, timeout=2.0, still=("imap", "pop3", "imap-login",
                                          "pop3-login")):
        """Wait (bounded) until no per-connection process is left, so
        that their CPU time has moved into the master's cutime."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            busy = False
            for name in os.listdir("/proc"):
                if not name.isdigit():
                    continue
                st = _stat(int(name))
                if st is None or st[0] != self.master:
                    continue
                try:
                    with open("/proc/%s/comm" % name) as f:
                        comm = f.read().strip()
                except OSError:
                    continue
                if comm in still:
                    busy = True
                    break
            if not busy:
                return True
            time.sleep(0.02)
        return False


def free_port():
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class Sink:
    """smtp-sink on 127.0.0.1:port, one dump file per transaction in
    dump_dir (made for user nobody).  lmtp: speak LMTP (-L)."""

    def __init__(self, binary, dump_dir, log_path, lmtp=False, port=None):
        self.binary = binary
        self.dump_dir = dump_dir
        self.lmtp = lmtp
        self.port = port or free_port()
        self.log_path = log_path
        self.proc = None
        os.makedirs(dump_dir, exist_ok=True)
        os.chmod(dump_dir, 0o755)
        os.chown(dump_dir, _nobody()[0], _nobody()[1])

    def argv(self):
        return ([self.binary, "-u", "nobody", "-d",
                 os.path.join(self.dump_dir, "m.")] +
                (["-L"] if self.lmtp else []) +
                ["127.0.0.1:%d" % self.port, "256"])

    def start(self):
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv(),
                                         stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=log)
        end = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("smtp-sink exited %d (log %s)"
                                   % (self.proc.returncode, self.log_path))
            try:
                with socket.create_connection(("127.0.0.1", self.port),
                                              timeout=1) as s:
                    s.recv(100)
                break
            except OSError:
                if time.monotonic() > end:
                    raise RuntimeError("smtp-sink did not start")
                time.sleep(0.01)
        return self

    def stop(self):
        """SIGTERM; returns (cpu seconds, peak RSS KB) of the sink."""
        if self.proc is None:
            return 0.0, 0
        self.proc.send_signal(signal.SIGTERM)
        pid, status, ru = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.proc = None
        return ru.ru_utime + ru.ru_stime, ru.ru_maxrss

    def count(self):
        try:
            return len(os.listdir(self.dump_dir))
        except FileNotFoundError:
            return 0

    def clear(self):
        for n in os.listdir(self.dump_dir):
            os.unlink(os.path.join(self.dump_dir, n))


_MSGID_RE = re.compile(rb"(?im)^Message-ID:[ \t]*(\S+)")


def dump_message_id(path, head_bytes=16384):
    """Message-ID of a dumped (or delivered) message, from its header."""
    with open(path, "rb") as f:
        head = f.read(head_bytes)
    top = re.split(rb"\r?\n\r?\n", head, maxsplit=1)
    # smtp-sink puts its own X-* lines and a Received: on top of the
    # message, all in the same header block.
    m = _MSGID_RE.search(top[0])
    return m.group(1).decode("latin-1") if m else None


def _nobody():
    import pwd
    pw = pwd.getpwnam("nobody")
    return pw.pw_uid, pw.pw_gid


# --------------------------------------------------------------------------
# inotify (for latency rounds): when is a file closed in a directory?

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100


class Watcher:
    """Report files closed after writing (or moved in) in one directory,
    with the monotonic time the event was read.  Falls back to polling
    the directory every millisecond without inotify."""

    def __init__(self, directory, mask=IN_CLOSE_WRITE | IN_MOVED_TO):
        self.dir = directory
        self.fd = None
        self.seen = set(os.listdir(directory))
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"),
                               use_errno=True)
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0:
                raise OSError(ctypes.get_errno(), "inotify_init1")
            wd = libc.inotify_add_watch(fd, directory.encode(), mask)
            if wd < 0:
                os.close(fd)
                raise OSError(ctypes.get_errno(), "inotify_add_watch")
            self.fd = fd
        except (OSError, AttributeError):
            self.fd = None

    def wait(self, timeout):
        """[(name, time)] of new files, waiting at most timeout seconds
        for the first one; [] on timeout."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return []
            if self.fd is not None:
                r, _, _ = select.select([self.fd], [], [], left)
                now = time.monotonic()
                if not r:
                    return []
                try:
                    data = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                out, off = [], 0
                while off + 16 <= len(data):
                    _, _, _, ln = struct.unpack_from("iIII", data, off)
                    name = data[off + 16:off + 16 + ln].rstrip(b"\0")
                    off += 16 + ln
                    n = name.decode("utf-8", "replace")
                    if n and n not in self.seen:
                        self.seen.add(n)
                        out.append((n, now))
                if out:
                    return out
            else:
                names = set(os.listdir(self.dir)) - self.seen
                now = time.monotonic()
                if names:
                    self.seen |= names
                    return [(n, now) for n in sorted(names)]
                time.sleep(0.001)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
