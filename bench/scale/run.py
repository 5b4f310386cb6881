#!/usr/bin/env python3
# ISC License; see LICENSE.
"""bench/scale/run.py: one hauld holding N IMAP IDLE sessions over TLS
against bench/scale/imapd; measures RSS per session, CPU at rest, push
latency at a steady message rate, and reconnect-storm recovery.  Python 3
stdlib only; needs root (RLIMIT_NOFILE beyond the hard limit).  Not part
of `make test`: `make bench-scale` builds and runs it.

    python3 bench/scale/run.py --build BUILD [-n 10000] [--duration 60]
        [--rate 100] [--slope-n 1000] [--addrs 10] [--retry-min 1]
        [--out bench/scale/results] [--keep]

BUILD holds hauld, haulctl and bench/scale/imapd (an optimised build
without test hooks: `make bench-scale-build`).

Phases (each printed as it goes, all in the report):
  1. slope run (--slope-n accounts; 0 = skip): hauld's RSS once all idle.
  2. main run, N accounts spread over --addrs addresses 127.0.0.10+:
     ramp   time until every account idles (imapd's count and haulctl's)
     rest   --duration s with nothing happening: hauld's CPU and RSS
     push   --duration s of --rate messages/s to random accounts: latency
            from the inject to the sink's "." (p50/p95/p99/max), hauld's
            CPU; every message must arrive exactly once
     storm  imapd drops every session; time until all idle again
            (max_tls_handshakes at its default), then a final check that
            nothing was delivered twice
RSS per session = (RSS(N) - RSS(slope-n)) / (N - slope-n): the cost of
one more account idling, config included, without the fixed part.

The accounts: IMAP, implicit TLS verified against a throwaway CA (IP
SANs), keep = yes, idle = yes, poll_interval 10 (the first polls spread
over 10 s), max_connections_per_host 1000 (each address is one "host"),
delivery.retry_min --retry-min (the storm's reconnects come after
[retry_min/2, retry_min] s).
"""

import argparse
import datetime
import json
import os
import platform
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(TOP, "tests", "fixtures"))

import fakepki  # noqa: E402
import haulfix  # noqa: E402

PW = "scale-pw-Qx81"
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def log(msg):
    sys.stderr.write("[scale %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def free_port(addrs):
    """A TCP port free on every address."""
    for _ in range(200):
        s = socket.socket()
        s.bind((addrs[0], 0))
        port = s.getsockname()[1]
        s.close()
        ok = True
        for a in addrs[1:]:
            t = socket.socket()
            try:
                t.bind((a, port))
            except OSError:
                ok = False
            finally:
                t.close()
        if ok:
            return port
    raise RuntimeError("no common free port")


def proc_cpu(pid):
    """utime + stime of pid in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK


def proc_rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1])
    return 0


def proc_fds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def pct(sorted_vals, p):
    if not sorted_vals:
        return float("nan")
    k = (len(sorted_vals) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (k - lo)


class Ctl:
    """imapd's control socket."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(path)
        self.f = self.s.makefile("rwb", buffering=0)

    def cmd(self, line):
        self.s.sendall(line.encode() + b"\n")
        r = self.f.readline().decode().strip()
        if not r.startswith("ok"):
            raise RuntimeError("imapd: %s -> %s" % (line, r))
        return r[2:].strip()

    def stats(self):
        return dict(kv.split("=") for kv in self.cmd("stats").split())

    def close(self):
        self.s.close()


class Setup:
    """imapd + sink + hauld for n accounts under dir."""

    def __init__(self, args, n, dir):
        self.args = args
        self.n = n
        self.dir = dir
        os.makedirs(dir, exist_ok=True)
        self.addrs = ["127.0.0.%d" % (10 + i) for i in range(args.addrs)]
        self.procs = []
        self.hauld = None

    def start(self, pki):
        a = self.args
        self.port = free_port(self.addrs)
        self.ctl_path = os.path.join(self.dir, "imapd.sock")
        argv = [os.path.join(a.build, "bench", "scale", "imapd"),
                "-n", str(self.n), "-C", self.ctl_path,
                "-c", pki.cert, "-k", pki.key, "-s", str(a.body_size),
                "-P", PW]
        for ad in self.addrs:
            argv += ["-l", "%s:%d" % (ad, self.port)]
        self.imapd = self._spawn(argv, "imapd.log")
        self._wait_path(self.ctl_path, self.imapd)
        self.ctl = Ctl(self.ctl_path)

        self.sink_port = free_port(["127.0.0.1"])
        self.sink_out = os.path.join(self.dir, "sink.txt")
        self.sink = self._spawn([sys.executable, os.path.join(HERE,
                                 "sink.py"), "--port", str(self.sink_port),
                                 "--out", self.sink_out], "sink.log")
        self._wait_port("127.0.0.1", self.sink_port, self.sink)

        self.conf = self._write_config(pki)
        self.hauld_sock = os.path.join(self.dir, "hauld.sock")
        self.hauld = self._spawn(a.wrapper.split() +
                                 [os.path.join(a.build, "hauld"), "-f",
                                  "-c", self.conf], "hauld.log")
        self._wait_path(self.hauld_sock, self.hauld)
        self.t_start = time.monotonic()
        self.rss_start = proc_rss_kb(self.hauld.pid)

    def _write_config(self, pki):
        a = self.args
        state = os.path.join(self.dir, "state")
        key = os.path.join(self.dir, "haul.key")
        with open(key, "w") as f:
            f.write(__import__("base64").b64encode(os.urandom(32)).decode()
                    + "\n")
        os.chmod(key, 0o600)
        pwf = os.path.join(self.dir, "pw")
        with open(pwf, "w") as f:
            f.write(PW + "\n")
        os.chmod(pwf, 0o600)
        out = ["global {",
               '\tstate_dir = "%s"' % state,
               '\tkey_file = "%s"' % key,
               '\tcontrol_socket = "%s"' % os.path.join(self.dir,
                                                        "hauld.sock"),
               '\tlog_level = "%s"' % a.log_level,
               '\tuser = "%s"' % a.user,
               "\tmax_connections_per_host = 1000"]
        if a.max_tls_handshakes:
            out.append("\tmax_tls_handshakes = %d" % a.max_tls_handshakes)
        out += ["}", "delivery {", '\tmode = "smtp"',
                '\ttarget = "127.0.0.1:%d"' % self.sink_port,
                "\tretry_min = %d" % a.retry_min, "}"]
        for i in range(self.n):
            out += ['account "a%d" {' % i, '\tprotocol = "imap"',
                    '\thost = "%s"' % self.addrs[i % len(self.addrs)],
                    "\tport = %d" % self.port, '\ttls = "implicit"',
                    '\tca_file = "%s"' % pki.ca_cert,
                    '\tuser = "user%d"' % i, '\tpassword_file = "%s"' % pwf,
                    '\tfolders = {"INBOX"}', "\tkeep = yes", "\tidle = yes",
                    "\tpoll_interval = 10",
                    '\tdeliver_to = {"u%d@scale.test"}' % i, "}"]
        conf = os.path.join(self.dir, "haul.conf")
        with open(conf, "w") as f:
            f.write("\n".join(out) + "\n")
        # hauld refuses root: it becomes a.user, which must own its
        # state and read its key and password (0600) files.
        pw = __import__("pwd").getpwnam(a.user)
        os.makedirs(state, exist_ok=True)
        for p in (self.dir, state, key, pwf, conf):
            os.chown(p, pw.pw_uid, pw.pw_gid)
        return conf

    def _spawn(self, argv, logname):
        lf = open(os.path.join(self.dir, logname), "w")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=lf,
                             stderr=lf, start_new_session=True)
        p.logfile = lf
        self.procs.append(p)
        return p

    @staticmethod
    def _wait_path(path, proc, t=30):
        end = time.monotonic() + t
        while not os.path.exists(path):
            if proc.poll() is not None:
                proc.logfile.flush()
                with open(proc.logfile.name) as f:
                    tail = f.read()[-1500:]
                raise RuntimeError("%s exited %s:\n%s" % (
                    proc.args[0], proc.returncode, tail))
            if time.monotonic() > end:
                raise RuntimeError("no %s" % path)
            time.sleep(0.05)

    @staticmethod
    def _wait_port(host, port, proc, t=30):
        end = time.monotonic() + t
        while True:
            try:
                socket.create_connection((host, port), 1).close()
                return
            except OSError:
                if proc.poll() is not None or time.monotonic() > end:
                    raise RuntimeError("sink did not start")
                time.sleep(0.05)

    def haulctl_idle(self):
        """Accounts haulctl reports with an IDLE connection up."""
        r = subprocess.run([os.path.join(self.args.build, "haulctl"), "-s",
                            self.hauld_sock, "status", "--json"],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError("haulctl: %s" % r.stderr)
        accts = json.loads(r.stdout)["accounts"]
        return sum(1 for x in accts if x.get("idle_connected")), len(accts)

    def wait_all_idle(self, t0, timeout, samples=None):
        """Until imapd sees n idling sessions and haulctl n idling
        accounts; returns seconds since t0.  samples: list to append
        (t, idling, rss_kb) to every ~0.5 s."""
        end = t0 + timeout
        best, best_t = -1, time.monotonic()
        while True:
            self.check_alive()
            st = self.ctl.stats()
            idling = int(st["idling"])
            if idling > best:
                best, best_t = idling, time.monotonic()
            elif time.monotonic() - best_t > 120:
                raise RuntimeError("stuck at %d of %d idling for 120s "
                                   "(%s)" % (idling, self.n, st))
            if samples is not None:
                samples.append((time.monotonic() - t0, idling,
                                proc_rss_kb(self.hauld.pid)))
            if idling >= self.n:
                got, total = self.haulctl_idle()
                if got >= self.n:
                    return time.monotonic() - t0
            if time.monotonic() > end:
                raise RuntimeError("only %d of %d idling after %ds (%s)" %
                                   (idling, self.n, timeout, st))
            time.sleep(0.5)

    def check_alive(self):
        for p in self.procs:
            if p.poll() is not None:
                raise RuntimeError("%s exited %s; see %s" % (
                    p.args[0], p.returncode, p.logfile.name))

    def sink_lines(self):
        out = []
        with open(self.sink_out) as f:
            for ln in f:
                t, mid = ln.split(" ", 1)
                out.append((float(t), mid.strip()))
        return out

    def stop(self):
        # hauld first, so it does not log the servers going away; each
        # child leads its own process group (a --wrapper's child too).
        for p in reversed(self.procs):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except OSError:
                    pass
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(10)
            p.logfile.close()


def settle_rss(pid, secs=3.0):
    """RSS after it stops moving (sampled for secs)."""
    vals = []
    end = time.monotonic() + secs
    while time.monotonic() < end:
        vals.append(proc_rss_kb(pid))
        time.sleep(0.25)
    return max(vals[-4:])


def push_phase(s, rate, duration, seq0=0):
    """Inject rate msg/s to random accounts for duration s; returns
    {msgid: inject_time}."""
    sent = {}
    rng = random.Random(4242 + seq0)
    n = int(rate * duration)
    t0 = time.time() + 0.2
    for k in range(n):
        due = t0 + k / rate
        d = due - time.time()
        if d > 0:
            time.sleep(d)
        idx = rng.randrange(s.n)
        mid = "scale-%d-%d@bench.test" % (seq0 + k, idx)
        t = time.time()
        s.ctl.cmd("inject %d %s" % (idx, mid))
        sent[mid] = t
    return sent


def wait_delivered(s, want, timeout=60):
    end = time.monotonic() + timeout
    while True:
        got = s.sink_lines()
        have = {m for _, m in got}
        if want <= have or time.monotonic() > end:
            return got
        time.sleep(0.5)


def run_slope(args, pki, root):
    n = args.slope_n
    log("slope run: %d accounts" % n)
    s = Setup(args, n, os.path.join(root, "slope"))
    try:
        s.start(pki)
        took = s.wait_all_idle(s.t_start, args.ramp_timeout)
        rss = settle_rss(s.hauld.pid)
        log("slope run: %d idle after %.1fs, RSS %d KB" % (n, took, rss))
        return {"n": n, "ramp_s": took, "rss_kb": rss,
                "rss_start_kb": s.rss_start}
    finally:
        s.stop()


def main(argv=None):
    ap = argparse.ArgumentParser(description="hauld scale benchmark")
    ap.add_argument("--build", required=True)
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--duration", type=int, default=60)
    ap.add_argument("--rate", type=float, default=100.0)
    ap.add_argument("--slope-n", type=int, default=1000)
    ap.add_argument("--addrs", type=int, default=10)
    ap.add_argument("--retry-min", type=int, default=1)
    ap.add_argument("--max-tls-handshakes", type=int, default=0,
                    help="0 = hauld's default")
    ap.add_argument("--body-size", type=int, default=2048)
    ap.add_argument("--ramp-timeout", type=int, default=600)
    ap.add_argument("--log-level", default="notice")
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--label", default="")
    ap.add_argument("--no-storm", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--user", default="",
                    help="the unprivileged user hauld becomes (default: "
                    "the test fixtures' daemon user)")
    ap.add_argument("--perf", default="",
                    help="perf record hauld during --perf-phase into "
                    "this file")
    ap.add_argument("--perf-phase", default="push",
                    choices=("push", "storm"))
    ap.add_argument("--wrapper", default="",
                    help="run hauld under this (e.g. heaptrack); RSS and "
                    "CPU figures then include the wrapper")
    args = ap.parse_args(argv)
    args.build = os.path.abspath(args.build)

    if os.geteuid() != 0:
        sys.exit("run.py: needs root (RLIMIT_NOFILE above the hard limit)")
    # hauld and imapd each hold one descriptor per session.  Raising the
    # hard limit needs CAP_SYS_RESOURCE (a container may not have it):
    # then the hard limit is what we get.
    want = args.n + 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
    except (ValueError, OSError):
        if hard < want:
            sys.exit("run.py: RLIMIT_NOFILE hard limit %d < %d needed for "
                     "%d sessions, and it cannot be raised here (no "
                     "CAP_SYS_RESOURCE)" % (hard, want, args.n))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    root = tempfile.mkdtemp(prefix="haul-scale-")
    os.chmod(root, 0o755)
    if not args.user:
        args.user = haulfix.daemon_user()
    log("work dir %s, load %s" % (root, loadavg()))
    pki = fakepki.make_pki(os.path.join(root, "pki"),
                           ips=["127.0.0.%d" % (10 + i)
                                for i in range(args.addrs)])
    res = {"n": args.n, "duration": args.duration, "rate": args.rate,
           "addrs": args.addrs, "retry_min": args.retry_min,
           "max_tls_handshakes": args.max_tls_handshakes or "default (64)",
           "body_size": args.body_size,
           "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
           "host": platform.node(), "kernel": platform.release(),
           "cpus": os.cpu_count(), "load_start": loadavg()}
    try:
        if args.slope_n and args.slope_n < args.n:
            res["slope"] = run_slope(args, pki, root)
        s = Setup(args, args.n, os.path.join(root, "main"))
        try:
            run_main(args, s, pki, res)
        finally:
            s.stop()
            res["imapd_log_tail"] = open(os.path.join(s.dir, "imapd.log")
                                         ).read()[-2000:]
    finally:
        res["load_end"] = loadavg()
        write_report(args, res)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
        else:
            log("kept %s" % root)


def run_main(args, s, pki, res):
    n = args.n
    log("main run: %d accounts over %d addresses" % (n, args.addrs))
    s.start(pki)
    samples = []
    took = s.wait_all_idle(s.t_start, args.ramp_timeout, samples)
    res["ramp_s"] = round(took, 1)
    res["fds"] = proc_fds(s.hauld.pid)
    log("ramp: %d idle after %.1fs (%d fds)" % (n, took, res["fds"]))
    rss = settle_rss(s.hauld.pid)
    res["rss_idle_kb"] = rss
    res["rss_start_kb"] = s.rss_start
    res["rss_per_session_total_kb"] = round(rss / n, 2)
    if "slope" in res:
        sl = res["slope"]
        res["rss_per_session_slope_kb"] = round(
            (rss - sl["rss_kb"]) / (n - sl["n"]), 2)
    log("RSS %d KB (%.1f KB/session overall%s)" % (
        rss, rss / n, ", %.2f KB/session slope" %
        res["rss_per_session_slope_kb"] if "slope" in res else ""))

    # rest
    c0, t0 = proc_cpu(s.hauld.pid), time.monotonic()
    time.sleep(args.duration)
    c1, t1 = proc_cpu(s.hauld.pid), time.monotonic()
    res["cpu_rest_pct"] = round(100 * (c1 - c0) / (t1 - t0), 2)
    res["rss_after_rest_kb"] = proc_rss_kb(s.hauld.pid)
    log("rest: CPU %.2f%% over %.0fs" % (res["cpu_rest_pct"], t1 - t0))

    # push
    perf = None
    if args.perf and args.perf_phase == "push":
        perf = subprocess.Popen(["perf", "record", "-F", "499", "-g",
                                 "-o", args.perf, "-p", str(s.hauld.pid)],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    c0, t0 = proc_cpu(s.hauld.pid), time.monotonic()
    sent = push_phase(s, args.rate, args.duration)
    c1, t1 = proc_cpu(s.hauld.pid), time.monotonic()
    if perf is not None:
        perf.send_signal(2)
        perf.wait(60)
    res["cpu_push_pct"] = round(100 * (c1 - c0) / (t1 - t0), 2)
    got = wait_delivered(s, set(sent))
    arrivals = {}
    for t, mid in got:
        arrivals.setdefault(mid, []).append(t)
    lat = sorted((min(arrivals[m]) - t) * 1000 for m, t in sent.items()
                 if m in arrivals)
    missing = [m for m in sent if m not in arrivals]
    dups = [m for m, ts in arrivals.items() if len(ts) > 1]
    res["push"] = {"sent": len(sent), "delivered": len(lat),
                   "missing": len(missing), "duplicates": len(dups),
                   "p50_ms": round(pct(lat, 50), 1),
                   "p95_ms": round(pct(lat, 95), 1),
                   "p99_ms": round(pct(lat, 99), 1),
                   "max_ms": round(lat[-1], 1) if lat else None,
                   "mean_ms": round(statistics.mean(lat), 1) if lat
                   else None}
    res["rss_after_push_kb"] = proc_rss_kb(s.hauld.pid)
    log("push: %s, CPU %.1f%%" % (res["push"], res["cpu_push_pct"]))

    if not args.no_storm:
        s.ctl.cmd("peak-reset")
        c0 = proc_cpu(s.hauld.pid)
        t0 = time.monotonic()
        ci0 = proc_cpu(s.imapd.pid)
        perf = None
        if args.perf and args.perf_phase == "storm":
            perf = subprocess.Popen(["perf", "record", "-F", "499", "-g",
                                     "-o", args.perf, "-p",
                                     str(s.hauld.pid)],
                                    stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL)
            time.sleep(0.5)
        dropped = s.ctl.cmd("drop")
        storm_samples = []
        took = s.wait_all_idle(t0, args.ramp_timeout, storm_samples)
        c1 = proc_cpu(s.hauld.pid)
        res["storm_samples"] = [(round(t, 1), i) for t, i, _ in
                                storm_samples[::max(1, len(storm_samples)
                                                    // 40)]]
        res["storm_imapd_cpu_s"] = round(proc_cpu(s.imapd.pid) - ci0, 1)
        if perf is not None:
            perf.send_signal(2)
            perf.wait(60)
        st = s.ctl.stats()
        res["storm"] = {"dropped": int(dropped), "recovery_s": round(took, 1),
                        "cpu_s": round(c1 - c0, 1),
                        "imapd_accepted_total": int(st["accepted"]),
                        "imapd_accept_errors": int(st["accept_errors"])}
        res["rss_after_storm_kb"] = settle_rss(s.hauld.pid)
        log("storm: %s" % res["storm"])
        # Reconnects must not re-deliver what was delivered.
        time.sleep(2)
        arrivals = {}
        for t, mid in s.sink_lines():
            arrivals.setdefault(mid, []).append(t)
        res["storm"]["duplicates_after"] = sum(
            1 for ts in arrivals.values() if len(ts) > 1)
        res["storm"]["unknown_after"] = sum(
            1 for m in arrivals if m not in sent)
    res["ramp_samples"] = [(round(t, 1), i, r) for t, i, r in
                           samples[::max(1, len(samples) // 60)]]


def markdown(res):
    """The run as a short Markdown table (missing phases are left out)."""
    rows = [("accounts (TLS IDLE sessions)", res["n"]),
            ("date, machine", "%s, %s CPUs, kernel %s" % (
                res["date"], res["cpus"], res["kernel"])),
            ("load average start / end", "%s / %s" % (
                res["load_start"], res.get("load_end", "?")))]
    if "ramp_s" in res:
        rows.append(("ramp: all idle after", "%.1f s" % res["ramp_s"]))
    if "rss_idle_kb" in res:
        rows.append(("hauld RSS, all idle", "%.1f MB" % (
            res["rss_idle_kb"] / 1024)))
        rows.append(("RSS / session (RSS/N)", "%.1f KB" %
                     res["rss_per_session_total_kb"]))
    if "rss_per_session_slope_kb" in res:
        rows.append(("RSS / session (slope %d..%d)" % (
            res["slope"]["n"], res["n"]), "%.1f KB" %
            res["rss_per_session_slope_kb"]))
    if "cpu_rest_pct" in res:
        rows.append(("CPU at rest (%d s)" % res["duration"], "%.2f %%" %
                     res["cpu_rest_pct"]))
    if "push" in res:
        p = res["push"]
        rows.append(("push %g msg/s for %d s: sent / delivered / missing "
                     "/ twice" % (res["rate"], res["duration"]),
                     "%d / %d / %d / %d" % (p["sent"], p["delivered"],
                                            p["missing"], p["duplicates"])))
        rows.append(("push latency p50 / p95 / p99 / max",
                     "%s / %s / %s / %s ms" % (p["p50_ms"], p["p95_ms"],
                                               p["p99_ms"], p["max_ms"])))
        rows.append(("CPU while pushing", "%.1f %%" % res["cpu_push_pct"]))
    if "storm" in res:
        st = res["storm"]
        rows.append(("storm: all %d idle again after" % st["dropped"],
                     "%.1f s (hauld CPU %.1f s, imapd %.1f s; "
                     "max_tls_handshakes %s, retry_min %d)" % (
                         st["recovery_s"], st["cpu_s"],
                         res.get("storm_imapd_cpu_s", float("nan")),
                         res["max_tls_handshakes"], res["retry_min"])))
        rows.append(("delivered twice after the storm",
                     str(st.get("duplicates_after", "?"))))
    out = ["| | |", "|---|---|"]
    out += ["| %s | %s |" % r for r in rows]
    return "\n".join(out) + "\n"


def write_report(args, res):
    os.makedirs(args.out, exist_ok=True)
    stamp = datetime.datetime.utcnow().strftime("%Y%m%d-%H%M")
    base = os.path.join(args.out, "%s-n%d%s" % (
        stamp, args.n, "-" + args.label if args.label else ""))
    with open(base + ".json", "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    with open(base + ".md", "w") as f:
        f.write(markdown(res))
    log("report: %s.json, %s.md" % (base, base))
    print(json.dumps({k: v for k, v in res.items()
                      if k not in ("ramp_samples", "imapd_log_tail",
                                   "storm_samples")},
                     indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
