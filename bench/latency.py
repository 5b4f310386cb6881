# ISC License; see LICENSE.
"""latency: IMAP IDLE push latency (Python 3 stdlib only).

A round: APPEND one message to the watched INBOX (t0 = just before the
APPEND goes out), then wait until

- the trivial idler (below: LOGIN, SELECT, IDLE, nothing else) has read
  "* n EXISTS": the server's own floor.  Dovecot 2.3 waits 500 ms
  (NOTIFY_DELAY_MSECS) before it tells an idling client about new mail;
- the fetcher under test has delivered the message to the sink: the
  sink's dump file is closed (inotify IN_CLOSE_WRITE) after the final
  dot.

The idler runs beside every fetcher, so each round yields both numbers and
their difference (what the fetcher adds above the floor).  A warm-up round
is not counted; rounds are 0.3 s apart so the fetcher is back in IDLE.
"""

import os
import queue
import re
import socket
import subprocess
import threading
import time

import haulfix
import clients
import procs
import report

# Rounds against Dovecot are 0.8 s apart: a change to the mailbox (the
# fetcher's own FETCH fills Dovecot's cache) starts Dovecot's 500 ms
# notify timer in the idler's process, and a round inside that window
# would see an early, meaningless floor.
GAP_DOVECOT = 0.8
GAP_FAKE = 0.2
ROUND_TIMEOUT = 10.0


class Idler(threading.Thread):
    """LOGIN, SELECT INBOX, IDLE; puts the monotonic time of every
    "* n EXISTS" on self.events."""

    def __init__(self, host, port, hostname, ca_file, user, password):
        super().__init__(daemon=True)
        self.events = queue.Queue()
        self.ready = threading.Event()
        self.error = None
        ctx = haulfix.ssl_context(ca_file)
        raw = socket.create_connection((host, port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = ctx.wrap_socket(raw, server_hostname=hostname)
        self.f = self.sock.makefile("rb")
        self.user, self.password = user, password
        self.stopping = False

    def _until(self, tag):
        while True:
            ln = self.f.readline()
            if not ln:
                raise EOFError("idler: connection closed")
            if ln.startswith(tag + b" "):
                if not ln.startswith(tag + b" OK"):
                    raise RuntimeError("idler: %r" % ln)
                return

    def run(self):
        try:
            self.f.readline()
            self.sock.sendall(b'a LOGIN "%s" "%s"\r\n' % (
                self.user.encode(), self.password.encode()))
            self._until(b"a")
            self.sock.sendall(b"b SELECT INBOX\r\n")
            self._until(b"b")
            self.sock.sendall(b"c IDLE\r\n")
            ln = self.f.readline()
            if not ln.startswith(b"+"):
                raise RuntimeError("idler: IDLE: %r" % ln)
            self.sock.settimeout(None)
            self.ready.set()
            while True:
                ln = self.f.readline()
                now = time.monotonic()
                if not ln:
                    break
                if re.match(rb"\* \d+ EXISTS", ln):
                    self.events.put(now)
        except Exception as e:          # noqa: BLE001 (reported)
            if not self.stopping:
                self.error = e
            self.ready.set()

    def stop(self):
        self.stopping = True
        try:
            self.sock.sendall(b"DONE\r\nd LOGOUT\r\n")
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class SinkWatch(threading.Thread):
    """Times of the messages closed in the sink's dump dir, by
    Message-ID."""

    def __init__(self, sink):
        super().__init__(daemon=True)
        self.sink = sink
        self.w = procs.Watcher(sink.dump_dir)
        self.arrived = {}
        self.cond = threading.Condition()
        self.stopping = False

    def run(self):
        while not self.stopping:
            for name, t in self.w.wait(0.2):
                try:
                    mid = procs.dump_message_id(
                        os.path.join(self.sink.dump_dir, name))
                except OSError:
                    continue
                with self.cond:
                    self.arrived.setdefault(mid, []).append(t)
                    self.cond.notify_all()

    def wait_for(self, mid, timeout):
        end = time.monotonic() + timeout
        with self.cond:
            while mid not in self.arrived:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
            return self.arrived[mid][0]

    def stop(self):
        self.stopping = True
        self.join(2)
        self.w.close()


def _drain(q):
    while True:
        try:
            q.get_nowait()
        except queue.Empty:
            return


def series(b, name, append, idler, watch, rounds, tag, gap):
    """rounds+1 rounds (the first is a warm-up); returns [(floor, e2e)]
    in seconds (None where a side timed out)."""
    out = []
    for i in range(rounds + 1):
        mid = "<idle.%s.%d.%d.%x@remote.test>" % (tag, i, os.getpid(),
                                                  int(time.time() * 1e6))
        data = haulfix.make_message(i + 1, size=3000, crlf=True, msgid=mid,
                                    to="idler@remote.test")
        _drain(idler.events)
        t0 = time.monotonic()
        append(data)
        try:
            t_floor = idler.events.get(timeout=ROUND_TIMEOUT)
        except queue.Empty:
            t_floor = None
        t_e2e = watch.wait_for(mid, ROUND_TIMEOUT) if watch else None
        if i > 0:
            out.append((t_floor - t0 if t_floor else None,
                        t_e2e - t0 if t_e2e else None))
        time.sleep(gap)
    return out


def _ms(v):
    return "-" if v is None else "%.1f" % (v * 1000)


def table(rows, floor_name):
    """rows: [(client, [(floor, e2e)...], note)]; each fetcher's series
    had its own idler, so each gets its own floor row."""
    L = ["| client | rounds | median ms | p95 ms | p99 ms | median above "
         "the floor ms | notes |", "|---|---:|---:|---:|---:|---:|---|"]
    for name, samples, note in rows:
        floors = [f for f, _ in samples if f is not None]
        L.append("| %s beside %s | %d | %s | %s | %s | - | `* n EXISTS` "
                 "read |" % (floor_name, name, len(floors),
                             _ms(report.med(floors)),
                             _ms(report.pct(floors, 95)),
                             _ms(report.pct(floors, 99))))
        e2e = [e for _, e in samples if e is not None]
        diff = [e - f for f, e in samples if e is not None and f is not None]
        lost = sum(1 for _, e in samples if e is None)
        if lost:
            note = (note + "; " if note else "") + \
                "%d round(s) never reached the sink" % lost
        L.append("| **%s** | %d | %s | %s | %s | %s | %s |" % (
            name, len(e2e), _ms(report.med(e2e)), _ms(report.pct(e2e, 95)),
            _ms(report.pct(e2e, 99)), _ms(report.med(diff)), note))
    return "\n".join(L)


def _wait_idle_hauld(b, conf, proc, timeout=20):
    """Until haulctl says the account sits in IDLE."""
    import json
    end = time.monotonic() + timeout
    haulctl = os.path.join(b.build, "haulctl")
    # The first poll of a daemon waits a random part of the interval:
    # ask for it now (once the control socket answers).
    asked = False
    while time.monotonic() < end:
        if not asked:
            r = subprocess.run([haulctl, "-c", conf, "fetch", "bench"],
                               capture_output=True, text=True, timeout=10)
            asked = r.returncode == 0 or "is " in r.stderr
            if not asked:
                time.sleep(0.05)
                continue
        if proc.poll() is not None:
            raise RuntimeError("hauld exited %d" % proc.returncode)
        r = subprocess.run([haulctl, "-c", conf, "status", "--json"],
                           capture_output=True, text=True, timeout=10)
        if r.returncode == 0:
            try:
                for a in json.loads(r.stdout)["accounts"]:
                    if a.get("idle_connected"):
                        return
            except (ValueError, KeyError):
                pass
        time.sleep(0.05)
    raise RuntimeError("hauld did not reach IDLE in %ds" % timeout)


def run_fetcher(b, cname, server, append, tag, rounds, notes, gap,
                nseries=3):
    """One fetcher in daemon/IDLE mode against server (dict: host,
    hostname, port, ca_file, user, password): nseries series of rounds,
    each with a fresh idler beside it.  Returns [(floor, e2e)]."""
    c = b.clients[cname]
    rdir = b.newdir("idle-%s-%s" % (tag, cname))
    sink = procs.Sink(b.smtp_sink, b.newdump("idle-" + cname),
                      os.path.join(rdir, "sink.log")).start()
    watch = SinkWatch(sink)
    watch.start()
    job = clients.Job(proto="imap", keep=True, host=server["host"],
                      hostname=server["hostname"], port=server["port"],
                      ca_file=server["ca_file"], user=server["user"],
                      password=server["password"], sink_port=sink.port,
                      dir=rdir, idle=True)
    argv, env, shown = c.prepare(job)
    log = open(os.path.join(rdir, "client.log"), "ab")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                            stderr=log, env=env, cwd=rdir,
                            start_new_session=True)
    samples = []
    try:
        if cname == "hauld":
            _wait_idle_hauld(b, os.path.join(rdir, "haul.conf"), proc)
        else:
            time.sleep(2.0)
            if proc.poll() is not None:
                raise RuntimeError("%s exited %d" % (cname, proc.returncode))
        for s in range(nseries):
            idler = Idler(server["host"], server["port"], server["hostname"],
                          server["ca_file"], server["user"],
                          server["password"])
            idler.start()
            idler.ready.wait(10)
            if idler.error:
                raise RuntimeError(str(idler.error))
            try:
                samples += series(b, cname, append, idler, watch, rounds,
                                  "%s%d" % (tag, s), gap)
            finally:
                idler.stop()
        dups = [m for m, ts in watch.arrived.items() if len(ts) > 1]
        if dups:
            notes.append("%s delivered %d message(s) more than once"
                         % (cname, len(dups)))
    finally:
        try:
            os.killpg(proc.pid, 15)
        except ProcessLookupError:
            pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(5)
        log.close()
        watch.stop()
        sink.stop()
    b.log("  [%s] %-9s median %s ms (floor %s ms) over %d rounds" % (
        tag, cname, _ms(report.med([e for _, e in samples if e])),
        _ms(report.med([f for f, _ in samples if f])), len(samples)))
    return samples, argv, shown


def _commands(b, got):
    out = []
    for cname, (argv, shown) in got.items():
        out.append("%s:\n\n```\n%s\n```\n" % (cname,
                                              report._redact_argv(argv, b)))
        for fname, text in shown:
            out.append("`%s`:\n\n```\n%s```\n" % (
                fname, text.replace(b.dir, "$RUN")))
    return "\n".join(out)


def run_dovecot(b, wl):
    d = b.dovecot
    user = "idler"
    server = {"host": d.host, "hostname": d.hostname, "port": d.imaps_port,
              "ca_file": d.ca_file, "user": user,
              "password": d.password(user)}
    app = d.imap(user)

    def append(data):
        typ, resp = app.append("INBOX", None, None, data)
        if typ != "OK":
            raise RuntimeError("APPEND: %r" % resp)

    rows, notes, cmds = [], [], {}
    try:
        for cname in ("hauld", "fetchmail"):
            if cname not in b.selected or not b.clients[cname].available():
                continue
            # an empty mailbox for each fetcher
            import shutil
            shutil.rmtree(os.path.join(d.mail_dir, user), ignore_errors=True)
            d._maildir(user)
            samples, argv, shown = run_fetcher(
                b, cname, server, append, "dovecot", b.args.rounds, notes,
                GAP_DOVECOT, 3 if cname == "hauld" else 1)
            cmds[cname] = (argv, shown)
            rows.append((cname, samples, "fetchmail --idle" if
                         cname == "fetchmail" else "idle = yes"))
    finally:
        try:
            app.logout()
        except Exception:               # noqa: BLE001
            pass
    md = table(rows, "trivial idler")
    md += "\n\nt0 is just before the APPEND is sent; the floor is when the " \
        "trivial idler, idling beside the fetcher, reads `* n EXISTS`; " \
        "*median above the floor* is the median of the per-round " \
        "differences.  hauld: 3 series x %d rounds (+1 warm-up each), " \
        "fetchmail one series; rounds %.1f s apart." % (b.args.rounds,
                                                       GAP_DOVECOT)
    if notes:
        md += "\n\n" + "\n".join("- " + n for n in notes)
    return {"wl": wl, "kind": "idle", "markdown": md, "rows": [],
            "samples": rows, "commands": _commands(b, cmds)}


def run_fake(b, wl):
    sys_path_fixture()
    from fakeimap import FakeIMAP
    if b.dovecot is not None:
        pki = b.dovecot.pki
    else:
        pki = haulfix.make_pki(os.path.join(b.dir, "pki"))
    user, pw = "idler", "fake-idler-Pw3x"
    srv = FakeIMAP([], users={user: pw}, tls="implicit",
                   certfile=pki.server_cert, keyfile=pki.server_key)
    server = {"host": "127.0.0.1", "hostname": "localhost",
              "port": srv.port, "ca_file": pki.ca_file, "user": user,
              "password": pw}

    def append(data):
        srv.add_message("INBOX", data)

    rows, notes, cmds = [], [], {}
    try:
        for cname in ("hauld", "fetchmail"):
            if cname not in b.selected or not b.clients[cname].available():
                continue
            samples, argv, shown = run_fetcher(
                b, cname, server, append, "fake", b.args.rounds, notes,
                GAP_FAKE, 3 if cname == "hauld" else 1)
            cmds[cname] = (argv, shown)
            rows.append((cname, samples, ""))
    finally:
        srv.stop()
    md = table(rows, "trivial idler")
    md += "\n\nThe server is tests/fixtures/fakeimap.py (Python, implicit " \
        "TLS, same test CA): `add_message()` sends `* n EXISTS` to every " \
        "session in IDLE at once; t0 is just before that call.  hauld: 3 series " \
        "x %d rounds (+1 warm-up each), fetchmail one series." % \
        b.args.rounds
    if notes:
        md += "\n\n" + "\n".join("- " + n for n in notes)
    return {"wl": wl, "kind": "idle", "markdown": md, "rows": [],
            "samples": rows, "commands": _commands(b, cmds)}


def sys_path_fixture():
    import sys
    p = os.path.join(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))), "tests", "fixtures")
    if p not in sys.path:
        sys.path.insert(0, p)
