# ISC License; see LICENSE.
"""fullpath: hauld -> private Postfix + haul-milter -> maildir, beside
smtp-source pushing the same messages through the same Postfix
(Python 3 stdlib only).

Four variants, each run --runs times with an empty maildir and queue:

  hauld, milter        IMAPS (keep) from Dovecot, injected to the fetch
                       listener (smtpd_milters = haul-milter, via_milter:
                       placeholder recipient, token checked, recipient
                       mapped) -> virtual(8) -> alice's maildir
  hauld, no milter     the same to the plain listener, deliver_to alice
  smtp-source, milter  one of the same messages carrying a valid
                       X-Haul-Token (signed here, docs/token.md), to the
                       placeholder recipient on the fetch listener, 4
                       sessions (hauld's default delivery.max_connections)
  smtp-source, no milter  the same message without the token, to alice on
                       the plain listener

Two rates each: accepted (client start to its exit: Postfix has queued
every message) and delivered (client start until every message is in the
maildir and the queue is empty).
"""

import base64
import hashlib
import hmac
import os
import socket
import struct
import subprocess
import time

import haulfix
import clients
import procs
import report

SESSIONS = 4

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  b"0123456789._/-")


def _pct(data):
    return "".join(chr(c) if c in _SAFE else "%%%02X" % c for c in data)


def make_token(key, account, mailbox=b"INBOX", uidv=1, uid=b"1"):
    """An X-Haul-Token value (docs/token.md), signed with key now."""
    t = int(time.time())
    kid = hashlib.sha256(key).hexdigest()[:8]
    canon = b"haul-token-v1\n"
    for name, val in ((b"k", kid.encode()), (b"a", account.encode()),
                      (b"m", mailbox), (b"u", b"%d." % uidv + uid),
                      (b"t", b"%d" % t)):
        canon += name + b"=" + str(len(val)).encode() + b":" + val + b"\n"
    mac = hmac.new(key, canon, hashlib.sha256).digest()
    sig = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    return "v=1; k=%s; a=%s; m=%s; u=%d.%s; t=%d; s=%s" % (
        kid, account, _pct(mailbox), uidv, _pct(uid), t, sig)


def milter_answers(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(2)
    try:
        s.connect(path)
        body = b"O" + struct.pack(">III", 6, 0x1ff, 0x1fffff)
        s.sendall(struct.pack(">I", len(body)) + body)
        head = s.recv(5)
        return len(head) == 5 and head[4:5] == b"O"
    except OSError:
        return False
    finally:
        s.close()


class Env:
    pass


def _maildir_files(p, user="alice"):
    return p.maildir_files(user)


def _clear_maildir(p, user="alice"):
    for f in p.maildir_files(user):
        os.unlink(f)


def _wait_delivered(p, n, t0, timeout=180):
    """Seconds from t0 until n messages are in alice's maildir and the
    queue is empty; None on timeout."""
    end = time.monotonic() + timeout
    new = os.path.join(p.mail_dir, "alice", "new")
    while time.monotonic() < end:
        try:
            have = len(os.listdir(new))
        except FileNotFoundError:
            have = 0
        if have >= n:
            q = p.queue()
            if not any(q[k] for k in ("maildrop", "incoming", "active")):
                return time.monotonic() - t0
        time.sleep(0.01)
    return None


def run(b, wl, msgs):
    d = b.dovecot
    n = len(msgs.data)
    e = Env()
    # hauld and the milter run as the same user (they share the key).
    MILTER_USER = clients.daemon_user()
    e.p = haulfix.Postfix(users=("alice",), catch_all=False,
                          milter_user=MILTER_USER)
    e.p.start()
    pf_cpu = procs.GroupCPU(e.p.pid)
    rdir = b.newdir("fullpath")
    os.chmod(rdir, 0o755)
    key = os.urandom(32)
    key_file = clients.write(os.path.join(rdir, "haul.key"),
                             base64.b64encode(key).decode() + "\n")
    clients.grant(key_file, MILTER_USER)
    # One haul.conf for the milter (and the account map it reads).
    c = b.clients["hauld"]
    milter_sec = ("milter {\n\tsocket = \"unix:%s\"\n\tuser = \"%s\"\n"
                  "\tgroup = \"postfix\"\n\tdaemon_name = \"fetch\"\n}\n"
                  % (e.p.milter_socket, MILTER_USER))
    rows, notes = [], []
    milter = None
    try:
        mjob = clients.Job(proto="imap", keep=True, host=d.host,
                           hostname=d.hostname, port=d.imaps_port,
                           ca_file=d.ca_file, user="alice",
                           password=d.password("alice"),
                           sink_port=e.p.fetch_port, dir=rdir,
                           delivery_extra=["via_milter = yes"],
                           extra_sections=milter_sec, key_file=key_file)
        mconf, _ = c.config(mjob)
        with open(mconf) as f:
            text = f.read()
        mlog = open(os.path.join(rdir, "milter.log"), "ab")
        milter = subprocess.Popen([b.milter, "-f", "-c", mconf],
                                  stdin=subprocess.DEVNULL, stdout=mlog,
                                  stderr=mlog, start_new_session=True)
        end = time.monotonic() + 10
        while not milter_answers(e.p.milter_socket):
            if milter.poll() is not None or time.monotonic() > end:
                raise RuntimeError("haul-milter did not start (see %s)"
                                   % os.path.join(rdir, "milter.log"))
            time.sleep(0.02)

        # smtp-source message files
        src = msgs.data[0].replace(b"\r\n", b"\n")
        plain_file = os.path.join(rdir, "message.eml")
        with open(plain_file, "wb") as f:
            f.write(src)
        tok_file = os.path.join(rdir, "message-token.eml")

        variants = [
            ("hauld", "milter"), ("hauld", "no milter"),
            ("smtp-source", "milter"), ("smtp-source", "no milter")]
        for run_no in range(1, b.runs + 1):
            for who, path in variants:
                _clear_maildir(e.p)
                vdir = b.newdir("fullpath-%s-%s-r%d" % (
                    who, path.replace(" ", ""), run_no))
                milt = path == "milter"
                port = e.p.fetch_port if milt else e.p.plain_port
                if who == "hauld":
                    b.reseed(msgs.data)
                    job = clients.Job(
                        proto="imap", keep=True, host=d.host,
                        hostname=d.hostname, port=d.imaps_port,
                        ca_file=d.ca_file, user="alice",
                        password=d.password("alice"), sink_port=port,
                        dir=vdir,
                        delivery_extra=["via_milter = yes"] if milt else [],
                        key_file=key_file)
                    conf, _ = c.config(job)
                    argv = [b.hauld, "-1", "-c", conf]
                else:
                    if milt:
                        with open(tok_file, "wb") as f:
                            f.write(b"X-Haul-Token: " +
                                    make_token(key, "bench").encode() +
                                    b"\n" + src)
                    argv = [b.smtp_source, "-4", "-s", str(SESSIONS), "-d",
                            "-m", str(n), "-F",
                            tok_file if milt else plain_file,
                            "-f", "bench@remote.test", "-t",
                            "bench@fetch.invalid" if milt else
                            "alice@local.test",
                            "127.0.0.1:%d" % port]
                dv0 = b.dv_cpu.sample()
                pf0 = pf_cpu.sample()
                m0 = procs.proc_cpu(milter.pid)
                t0 = time.monotonic()
                res = procs.run_measured(argv, os.path.join(vdir,
                                                            "client.log"),
                                         cap=300, runner=b.runner)
                t_del = _wait_delivered(e.p, n, t0)
                pf1 = pf_cpu.sample()
                m1 = procs.proc_cpu(milter.pid)
                b.dv_cpu.settle()
                dv1 = b.dv_cpu.sample()
                err = None
                files = _maildir_files(e.p)
                if res.rc != 0 or res.capped:
                    err = "exit %d%s" % (res.rc, " (capped)" if res.capped
                                         else "")
                elif t_del is None:
                    err = "only %d of %d messages delivered" % (len(files),
                                                                n)
                else:
                    err = _check_maildir(files, msgs, who, milt)
                row = {"who": who, "path": path, "run": run_no,
                       "accept": res.wall, "deliver": t_del,
                       "cpu": res.cpu, "rss_kb": res.maxrss_kb,
                       "postfix_cpu": pf1 - pf0, "milter_cpu": m1 - m0,
                       "dovecot_cpu": dv1 - dv0 if who == "hauld" else 0,
                       "error": err, "argv": argv}
                rows.append(row)
                b.log("  [fullpath run %d/%d] %-11s %-9s accepted %.2f s "
                      "(%.0f msg/s), in maildir %s%s" % (
                          run_no, b.runs, who, path, res.wall,
                          n / res.wall,
                          "%.2f s (%.0f msg/s)" % (t_del, n / t_del)
                          if t_del else "-",
                          "  FAILED: " + err if err else ""))
                if err:
                    notes.append("%s, %s, run %d: %s" % (who, path, run_no,
                                                         err))
                    _drain_queue(e.p)
    finally:
        if milter is not None:
            milter.terminate()
            try:
                milter.wait(10)
            except subprocess.TimeoutExpired:
                milter.kill()
                milter.wait(5)
        e.p.close()
    return {"wl": wl, "kind": "fullpath", "rows": [], "fp_rows": rows,
            "markdown": _table(rows, n, notes),
            "errors": [r["error"] for r in rows if r["error"] and
                       r["who"] == "hauld"],
            "commands": _commands(b, rows, text)}


def _drain_queue(p):
    try:
        p.purge()
    except Exception:                   # noqa: BLE001
        pass


def _check_maildir(files, msgs, who, milt):
    """hauld: every Message-ID once; via the milter the messages carry
    X-Haul-Account and no token (the milter did its job)."""
    seen = {}
    sample_hdr = None
    for f in files:
        mid = procs.dump_message_id(f)
        seen[mid] = seen.get(mid, 0) + 1
        if sample_hdr is None:
            with open(f, "rb") as fh:
                sample_hdr = fh.read(8192).split(b"\n\n", 1)[0]
    if who == "hauld":
        dups = [m for m, k in seen.items() if k > 1]
        missing = [m for m in msgs.ids if m not in seen]
        if dups or missing:
            return "%d duplicate, %d missing Message-IDs" % (len(dups),
                                                             len(missing))
    if milt and sample_hdr is not None:
        if b"\nX-Haul-Account:" not in b"\n" + sample_hdr:
            return "no X-Haul-Account: the milter did not map the message"
        if b"X-Haul-Token" in sample_hdr:
            return "X-Haul-Token reached the maildir"
    return None


def _table(rows, n, notes):
    def agg(who, path, key):
        return report.med([r[key] for r in rows if r["who"] == who and
                           r["path"] == path and not r["error"] and
                           r[key] is not None])

    L = ["| client | path | accepted msg/s | delivered msg/s | client CPU s "
         "| Postfix CPU s | milter CPU s | Dovecot CPU s | client peak RSS "
         "MB | good runs |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    rate = {}
    for who in ("hauld", "smtp-source"):
        for path in ("milter", "no milter"):
            mine = [r for r in rows if r["who"] == who and r["path"] == path]
            good = [r for r in mine if not r["error"]]
            acc = report.med([n / r["accept"] for r in good])
            dl = report.med([n / r["deliver"] for r in good if r["deliver"]])
            rate[(who, path)] = (acc, dl)
            rss = agg(who, path, "rss_kb")
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %d/%d |"
                     % (who, path, report._f(acc, "%.0f"),
                        report._f(dl, "%.0f"),
                        report._f(agg(who, path, "cpu"), "%.2f"),
                        report._f(agg(who, path, "postfix_cpu"), "%.2f"),
                        report._f(agg(who, path, "milter_cpu"), "%.2f")
                        if path == "milter" else "-",
                        report._f(agg(who, path, "dovecot_cpu"), "%.2f")
                        if who == "hauld" else "-",
                        report._f(rss and rss / 1024, "%.1f"),
                        len(good), len(mine)))

    def ratio(a, b_, i):
        x, y = rate.get(a, (None, None))[i], rate.get(b_, (None, None))[i]
        return None if not x or not y else x / y

    L.append("")
    for i, what in ((0, "accepted"), (1, "delivered")):
        h = ratio(("hauld", "milter"), ("smtp-source", "milter"), i)
        cost_s = ratio(("smtp-source", "milter"),
                       ("smtp-source", "no milter"), i)
        cost_h = ratio(("hauld", "milter"), ("hauld", "no milter"), i)
        L.append("- %s: hauld through the milter path reaches %s of "
                 "smtp-source's rate on the same path (target >= 90%%); "
                 "the milter costs smtp-source %s and hauld %s of their "
                 "rate (target <= 25%%)" % (
                     what, report._f(h and 100 * h, "%.0f%%"),
                     report._f(cost_s is not None and 100 * (1 - cost_s),
                               "%.0f%%"),
                     report._f(cost_h is not None and 100 * (1 - cost_h),
                               "%.0f%%")))
    L.append("- smtp-source runs %d sessions (`-s %d -d`), hauld its "
             "default delivery.max_connections (4); hauld also fetches "
             "every message from Dovecot over IMAPS in the same time, "
             "smtp-source reads one local file" % (SESSIONS, SESSIONS))
    for x in notes:
        L.append("- " + x)
    return "\n".join(L)


def _commands(b, rows, conf_text):
    seen, out = set(), []
    for r in rows:
        k = (r["who"], r["path"])
        if k in seen:
            continue
        seen.add(k)
        out.append("%s, %s:\n\n```\n%s\n```\n" % (
            r["who"], r["path"], report._redact_argv(r["argv"], b)))
    out.append("haul.conf of the milter (and of hauld via the milter):\n\n"
               "```\n%s```\n" % conf_text.replace(b.dir, "$RUN"))
    return "\n".join(out)
