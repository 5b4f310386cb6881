#!/usr/bin/env python3
# ISC License; see LICENSE.
"""haul bench: hauld side by side with fetchmail, fdm, getmail6 and mpop
(`make bench`; bench/README.md).  Python 3 stdlib only; needs root (the
private Dovecot and Postfix of tests/fixtures/haulfix.py).

    python3 bench/bench.py --build build/bench [--runs 3] [--only NAMES]
        [--peers hauld,fetchmail,...] [--cap SECONDS] [--out FILE]
    python3 bench/bench.py --list

Workloads (--only takes a comma list of names or prefixes, e.g. "pop3-20k"
or "idle"):
  {pop3,imap}-{20k,1m}-{keep,delete}
                 2000 x 20 KB or 200 x 1 MB over POP3S or IMAPS, leaving
                 the mail on the server or deleting it.  Each run: for every
                 client, a freshly seeded mailbox, a fresh smtp-sink, the
                 client to its end; every Message-ID must reach the sink
                 exactly once and the server must be left with the right
                 count.  The reference client `limit` runs in the same run
                 and every rate is also given as % of its rate.
  fullpath-20k   hauld -> private Postfix with haul-milter -> maildir,
                 beside smtp-source pushing the same messages through the
                 same Postfix with and without the milter.
  idle-dovecot   IMAP IDLE push latency: APPEND -> message at the sink for
                 hauld and fetchmail --idle, beside a trivial idling
                 client's "* EXISTS" (Dovecot's own floor).
  idle-immediate the same against a scripted server (tests/fixtures/
                 fakeimap.py) that sends "* EXISTS" at once.
  big-{pop3,imap} one 200 MB message: peak RSS.

Peers that have not finished after --cap seconds (default 6) are stopped;
their rate is then what reached the sink by the cap, over the cap (marked
"capped" in the report; a whole run of fetchmail takes minutes).
"""

import argparse
import datetime
import os
import random
import shutil
import socket
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "fixtures"))
sys.path.insert(0, HERE)

import haulfix  # noqa: E402
import clients  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402

KB, MB = 1024, 1024 * 1024
USER = "alice"


class Throughput:
    kind = "throughput"

    def __init__(self, name, proto, count, size, keep, big=False):
        self.name, self.proto, self.count, self.size = name, proto, count, size
        self.keep, self.big = keep, big

    def describe(self):
        if self.big:
            return "one %d MB message over %s, keep" % (
                self.size // MB, self.proto.upper() + "S")
        sz = "%d KB" % (self.size // KB) if self.size < MB else \
            "%d MB" % (self.size // MB)
        return "%d x %s over %sS, %s" % (self.count, sz, self.proto.upper(),
                                         "keep" if self.keep else "delete")


class Named:
    def __init__(self, name, kind, text):
        self.name, self.kind, self.text = name, kind, text

    def describe(self):
        return self.text


def workloads(small=False):
    """Every workload, in run order.  small: tiny sizes (smoke test)."""
    out = []
    for size, count, tag in ((20 * KB, 2000, "20k"), (1 * MB, 200, "1m")):
        for proto in ("pop3", "imap"):
            for keep in (True, False):
                n = "%s-%s-%s" % (proto, tag, "keep" if keep else "delete")
                out.append(Throughput(n, proto, 20 if small else count,
                                      size, keep))
    out.append(Named("fullpath-20k", "fullpath",
                     "2000 x 20 KB: hauld -> Postfix + haul-milter -> "
                     "maildir, beside smtp-source"))
    out.append(Named("idle-dovecot", "idle",
                     "IDLE push latency against Dovecot"))
    out.append(Named("idle-immediate", "idle-fake",
                     "IDLE push latency against a server that notifies at "
                     "once"))
    for proto in ("pop3", "imap"):
        out.append(Throughput("big-" + proto, proto, 1,
                              (2 * MB) if small else 200 * MB, True,
                              big=True))
    return out


# --------------------------------------------------------------------------
# Messages: generated once per size; unique Message-IDs.

_LOREM = ("lorem ipsum dolor sit amet consectetur adipiscing elit sed do "
          "eiusmod tempor incididunt ut labore et dolore magna aliqua ut "
          "enim ad minim veniam quis nostrud exercitation ullamco laboris "
          "nisi aliquip ex ea commodo consequat").split()


def _body_block(size, seed=7):
    rng = random.Random(seed)
    lines, n, total = [], 0, 0
    while total < size:
        words, ln = [], 0
        while ln < 66:
            w = rng.choice(_LOREM)
            words.append(w)
            ln += len(w) + 1
        line = ("%06d " % n + " ".join(words) + "\n").encode()
        if n % 97 == 13:
            line = b"." + line          # dot-stuffing on the wire
        lines.append(line)
        total += len(line)
        n += 1
        if total >= 1 * MB and size > 4 * MB:
            break
    block = b"".join(lines)
    if len(block) < size:
        block = block * (size // len(block) + 1)
    return block


class Messages:
    def __init__(self, tag, count, size):
        block = _body_block(size)
        self.ids, self.data, self.sizes = [], [], {}
        for i in range(1, count + 1):
            mid = "<bench.%s.%d.%08x@remote.test>" % (
                tag, i, random.getrandbits(32))
            head = haulfix.make_message(i, to="%s@remote.test" % USER,
                                        msgid=mid, body=b"")
            body = block[:max(0, size - len(head))]
            cut = body.rfind(b"\n")
            body = body[:cut + 1] if cut > 0 else body
            data = head + body
            self.ids.append(mid)
            self.data.append(data)
            self.sizes[mid] = len(data)
        self.total = sum(len(d) for d in self.data)


# --------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.hauld = os.path.join(self.build, "hauld")
        self.milter = os.path.join(self.build, "haul-milter")
        tools = os.path.abspath(args.tools or os.path.join(self.build,
                                                           "bench"))
        self.limit = os.path.join(tools, "limit")
        self.runner = os.path.join(tools, "runner")
        self.smtp_sink = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
        self.smtp_source = shutil.which("smtp-source") or \
            "/usr/sbin/smtp-source"
        self.runs = args.runs
        self.cap = args.cap
        self.dir = tempfile.mkdtemp(prefix="haul-fix-bench-", dir="/tmp")
        os.chmod(self.dir, 0o755)
        haulfix.register_dir(self.dir, "bench")
        shm = "/dev/shm"
        if os.path.isdir(shm) and os.access(shm, os.W_OK):
            _clean_stale_dumps(shm)
            self.dump_root = tempfile.mkdtemp(
                prefix="haul-bench-%d-" % os.getpid(), dir=shm)
        else:
            self.dump_root = os.path.join(self.dir, "dumps")
            os.makedirs(self.dump_root)
        os.chmod(self.dump_root, 0o755)
        self.dovecot = None
        self.results = {}        # workload name -> data for the report
        self.messages = {}
        self.seq = 0
        self.clients = {c.name: c(self) for c in clients.ALL}
        want = args.peers.split(",") if args.peers else None
        self.selected = [n for n in ["limit", "hauld"] + clients.PEERS
                         if want is None or n in want or n == "limit"]

    def log(self, msg):
        sys.stdout.write(msg + "\n")
        sys.stdout.flush()

    def newdir(self, what):
        self.seq += 1
        d = os.path.join(self.dir, "%03d-%s" % (self.seq, what))
        os.makedirs(d)
        os.chmod(d, 0o755)
        return d

    def newdump(self, what):
        d = os.path.join(self.dump_root, "%03d-%s" % (self.seq, what))
        if os.path.exists(d):
            shutil.rmtree(d)
        return d

    # Dovecot --------------------------------------------------------------
    def start_dovecot(self):
        if self.dovecot is None:
            users = {u: "bench-%s-Pw7q" % u for u in (USER, "idler")}
            self.dovecot = haulfix.Dovecot(users=users)
            self.dovecot.start()
            self.dv_cpu = procs.GroupCPU(self.dovecot.pid)
        return self.dovecot

    def reseed(self, msgs, user=USER):
        """A fresh mailbox (new UIDVALIDITY, no index) holding msgs, with
        Dovecot's index and size cache built before the clock starts."""
        d = self.dovecot
        root = os.path.join(d.mail_dir, user)
        shutil.rmtree(root, ignore_errors=True)
        d.seed(user, msgs)
        # warm: POP3 LIST (virtual sizes), IMAP SELECT (new/ -> cur/) and
        # UID FETCH sizes, so every client starts from the same state.
        c = d.pop3(user)
        c.list()
        c.quit()
        with d.imap_session(user) as c:
            c.select("INBOX")
            c.uid("FETCH", "1:*", "(UID RFC822.SIZE)")

    def message_set(self, wl):
        key = (wl.count, wl.size)
        if key not in self.messages:
            self.messages[key] = Messages("%dx%d" % key, wl.count, wl.size)
        return self.messages[key]

    # one client run ---------------------------------------------------------
    def run_client(self, wl, cname, msgs, run_no):
        c = self.clients[cname]
        d = self.dovecot
        self.reseed(msgs.data)
        rdir = self.newdir("%s-%s-r%d" % (wl.name, cname, run_no))
        dump = self.newdump(cname)
        sink = procs.Sink(self.smtp_sink, dump,
                          os.path.join(rdir, "sink.log"),
                          lmtp=(c.delivery == "lmtp"))
        if c.delivery != "none":
            sink.start()
        port = d.pop3s_port if wl.proto == "pop3" else d.imaps_port
        job = clients.Job(proto=wl.proto, keep=wl.keep, host=d.host,
                          hostname=d.hostname, port=port, ca_file=d.ca_file,
                          user=USER, password=d.password(USER),
                          sink_port=sink.port, lmtp_port=sink.port,
                          dir=rdir, max_size=wl.size if wl.big else 0)
        argv, env, shown = c.prepare(job)
        peer = cname in clients.PEERS
        at_cap = []
        cap = self.cap if peer else max(120.0, self.cap)
        if wl.big:
            cap = max(cap, 60.0)
        cpu0 = self.dv_cpu.sample()
        res = procs.run_measured(argv, os.path.join(rdir, "client.log"),
                                 env=env, cap=cap, cwd=rdir,
                                 on_cap=lambda: at_cap.append(sink.count()),
                                 runner=self.runner)
        self.dv_cpu.settle()
        dv = self.dv_cpu.sample() - cpu0
        sink_cpu, sink_rss = sink.stop() if c.delivery != "none" else (0, 0)
        r = {"client": cname, "run": run_no, "wall": res.wall, "warn": None,
             "cpu": res.cpu, "rss_kb": res.maxrss_kb, "dovecot_cpu": dv,
             "sink_cpu": sink_cpu, "sink_rss_kb": sink_rss,
             "capped": res.capped, "rc": res.rc, "argv": argv,
             "shown": shown, "error": None, "dir": rdir}
        try:
            r.update(self.check(wl, c, msgs, res, dump, at_cap))
        except Exception as e:          # noqa: BLE001 (reported)
            r["error"] = str(e)
            r["delivered"] = 0
        if r["error"] is None and r["delivered"] == 0 and not res.capped:
            r["error"] = "nothing delivered"
        if r["error"]:
            r["log_tail"] = _tail(res.log)
        r["rate"] = r["delivered"] / res.wall if res.wall > 0 else 0
        r["mbps"] = r.get("bytes", 0) / MB / res.wall if res.wall else 0
        shutil.rmtree(dump, ignore_errors=True)
        return r

    def check(self, wl, c, msgs, res, dump, at_cap):
        """Every Message-ID exactly once at the sink, nothing else, none
        cut short; the server left with the right count."""
        out = {}
        if c.delivery == "none":
            if res.rc != 0:
                raise RuntimeError("exit %d" % res.rc)
            with open(res.log, "rb") as f:
                text = f.read().decode("utf-8", "replace")
            got = dict(kv.split("=") for kv in text.split() if "=" in kv)
            n = int(got.get("messages", 0))
            if n != wl.count:
                raise RuntimeError("read %d of %d messages" % (n, wl.count))
            out["delivered"] = n
            out["bytes"] = msgs.total
            return out
        names = sorted(os.listdir(dump))
        seen = {}
        short = []
        for n in names:
            p = os.path.join(dump, n)
            mid = procs.dump_message_id(p)
            seen[mid] = seen.get(mid, 0) + 1
            if mid in msgs.sizes and os.path.getsize(p) < msgs.sizes[mid]:
                short.append(mid)
        dups = [m for m, k in seen.items() if k > 1]
        unknown = [m for m in seen if m not in msgs.sizes]
        missing = [m for m in msgs.ids if m not in seen]
        delivered = len(seen) - len(unknown)
        if res.capped:
            # What had arrived when the cap struck is the rate's basis.
            delivered = min(delivered, at_cap[0]) if at_cap else delivered
        errs, warns = [], []
        if dups:
            errs.append("%d Message-IDs delivered more than once (%s)"
                        % (len(dups), dups[0]))
        if unknown:
            errs.append("%d unknown messages at the sink" % len(unknown))
        if short:
            errs.append("%d messages cut short at the sink" % len(short))
        if missing and not res.capped:
            errs.append("%d of %d messages never reached the sink (exit %d)"
                        % (len(missing), wl.count, res.rc))
        left = self.dovecot.count(USER)
        if wl.keep and left != wl.count:
            errs.append("keep: server has %d of %d messages" % (left,
                                                                wl.count))
        if not wl.keep:
            if not res.capped and left != 0:
                # Every message was delivered; the removal fell short.
                # The rate still counts; the report flags the run.
                warns.append("delete: %d of %d messages left on the server "
                             "after the run" % (left, wl.count))
            if left + len(seen) < wl.count:
                errs.append("delete: %d messages gone from the server "
                            "without reaching the sink"
                            % (wl.count - left - len(seen)))
        out["delivered"] = delivered
        out["server_left"] = left
        out["bytes"] = sum(msgs.sizes[m] for m in seen if m in msgs.sizes) \
            * (delivered / max(1, len(seen) - len(unknown)))
        out["error"] = "; ".join(errs) or None
        out["warn"] = "; ".join(warns) or None
        return out

    # workloads -----------------------------------------------------------
    def throughput(self, wl):
        self.start_dovecot()
        msgs = self.message_set(wl)
        runs = 1 if wl.big else self.runs
        names = [n for n in self.selected
                 if wl.proto in self.clients[n].protocols and
                 self.clients[n].available()]
        missing = [n for n in self.selected if n not in names and
                   wl.proto in self.clients[n].protocols]
        rows = []
        for r in range(1, runs + 1):
            for n in names:
                row = self.run_client(wl, n, msgs, r)
                rows.append(row)
                self.log(report.progress_line(wl, row, runs))
        self.results[wl.name] = {"wl": wl, "kind": wl.kind, "rows": rows,
                                 "missing": missing,
                                 "msg_total": msgs.total}

    def fullpath(self, wl):
        import fullpath
        self.start_dovecot()
        msgs = self.message_set(Throughput("x", "imap", 2000 if not
                                           self.args.small else 20,
                                           20 * KB, True))
        self.results[wl.name] = fullpath.run(self, wl, msgs)

    def idle(self, wl):
        import latency
        self.start_dovecot()
        self.results[wl.name] = latency.run_dovecot(self, wl)

    def idle_fake(self, wl):
        import latency
        self.results[wl.name] = latency.run_fake(self, wl)

    def run(self, selected):
        t0 = time.monotonic()
        self.info = report.machine_info(self)
        self.info["load_start"] = os.getloadavg()
        self.info["started"] = datetime.datetime.now().strftime(
            "%Y-%m-%d %H:%M:%S")
        failed = []
        for wl in selected:
            self.log("== %s: %s" % (wl.name, wl.describe()))
            try:
                {"throughput": self.throughput, "fullpath": self.fullpath,
                 "idle": self.idle, "idle-fake": self.idle_fake}[wl.kind](wl)
            except Exception as e:      # noqa: BLE001 (reported)
                traceback.print_exc()
                failed.append(wl.name)
                self.results[wl.name] = {"wl": wl, "kind": "failed",
                                         "error": "%s: %s" % (
                                             type(e).__name__, e)}
        self.info["load_end"] = os.getloadavg()
        self.info["duration"] = time.monotonic() - t0
        return failed

    def close(self):
        if self.dovecot is not None:
            self.dovecot.close()
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
            shutil.rmtree(self.dump_root, ignore_errors=True)
        haulfix.unregister_dir(self.dir)


def _clean_stale_dumps(shm):
    """Dump dirs of bench runs that died (their pid is in the name)."""
    for n in os.listdir(shm):
        parts = n.split("-")
        if n.startswith("haul-bench-") and len(parts) >= 4 and \
                parts[2].isdigit() and \
                not os.path.exists("/proc/%s" % parts[2]):
            shutil.rmtree(os.path.join(shm, n), ignore_errors=True)


def _tail(path, n=12):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4000))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(lines[-n:])


def select_workloads(all_wl, only):
    if not only or only == "all":
        return all_wl
    out = []
    for part in only.split(","):
        hit = [w for w in all_wl if w.name == part] or \
            [w for w in all_wl if w.name.startswith(part)]
        if not hit:
            sys.exit("bench: unknown workload %r (--list shows them)" % part)
        out += [w for w in hit if w not in out]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default="build/bench")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tools", default="",
                    help="where limit and runner are (default BUILD/bench)")
    ap.add_argument("--only", default="all")
    ap.add_argument("--peers", default="",
                    help="comma list of clients besides limit (default: "
                    "hauld and every peer)")
    ap.add_argument("--cap", type=float, default=6.0,
                    help="seconds a peer may run before it is stopped")
    ap.add_argument("--rounds", type=int, default=20,
                    help="IDLE rounds per series (3 series)")
    ap.add_argument("--out", default="")
    ap.add_argument("--small", action="store_true",
                    help="tiny workloads (the smoke test)")
    ap.add_argument("--keep", action="store_true", help="keep temp dirs")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)
    all_wl = workloads(args.small)
    if args.list:
        for w in all_wl:
            print("%-16s %s" % (w.name, w.describe()))
        return 0
    if os.geteuid() != 0:
        sys.exit("bench: needs root (the private Postfix's master refuses "
                 "any other user; Dovecot switches to the mail uid)")
    selected = select_workloads(all_wl, args.only)
    haulfix.become_subreaper()
    haulfix.cleanup_stale()
    b = Bench(args)
    b.argv_shown = ["python3", "bench/bench.py"] + list(
        sys.argv[1:] if argv is None else argv)
    for need in (b.hauld, b.smtp_sink, b.limit, b.runner):
        if not os.access(need, os.X_OK):
            sys.exit("bench: %s is missing (run: make bench)" % need)
    try:
        failed = b.run(selected)
    finally:
        b.close()
        haulfix.stop_all()
    out = args.out or os.path.join(
        TOP, "bench", "results", "%s-%s.md" % (
            datetime.date.today().isoformat(), socket.gethostname()))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    text = report.render(b, selected)
    with open(out, "w") as f:
        f.write(text)
    b.log("bench: report written to %s (%.0f s)" % (
        os.path.relpath(out), b.info["duration"]))
    bad = failed + report.failed_checks(b)
    if bad:
        b.log("bench: problems in: %s" % ", ".join(sorted(set(bad))))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
