# ISC License; see LICENSE.
"""report: the markdown written to bench/results/ (Python 3 stdlib only)."""

import os
import platform
import re
import shlex
import statistics
import subprocess

import clients

MB = 1024 * 1024


def _cmd(argv):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip()
    except OSError:
        return ""


def machine_info(b):
    info = {"host": platform.node(), "kernel": platform.release(),
            "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"(?m)^model name\s*:\s*(.*)$", f.read())
            info["cpu"] = m.group(1) if m else "?"
    except OSError:
        info["cpu"] = "?"
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"MemTotal:\s*(\d+)", f.read())
            info["mem_gb"] = int(m.group(1)) / 1024 / 1024 if m else 0
    except OSError:
        info["mem_gb"] = 0
    try:
        with open("/etc/os-release") as f:
            m = re.search(r'(?m)^PRETTY_NAME="?([^"\n]*)', f.read())
            info["os"] = m.group(1) if m else "?"
    except OSError:
        info["os"] = "?"
    info["versions"] = {
        "Dovecot": _cmd(["dovecot", "--version"]),
        "Postfix": _cmd(["postconf", "-d", "-h", "mail_version"]),
        "OpenSSL": _cmd(["openssl", "version"]),
        "Python": platform.python_version(),
    }
    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    head = _cmd(["git", "-C", top, "rev-parse", "--short", "HEAD"])
    dirty = _cmd(["git", "-C", top, "status", "--porcelain",
                  "--untracked-files=no"])
    info["tree"] = "%s%s" % (head or "?", " with uncommitted changes"
                             if dirty else "")
    for c in b.clients.values():
        if c.name != "limit" and c.available():
            info["versions"][c.name] = c.version()
    return info


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs, p):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    k = (len(xs) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def progress_line(wl, r, runs):
    if r["error"]:
        state = "FAILED: " + r["error"]
    else:
        state = "%5d msgs %7.2f s %8.1f msg/s %7.1f MB/s cpu %.2f s " \
            "rss %s MB%s" % (r["delivered"], r["wall"], r["rate"],
                             r["mbps"], r["cpu"],
                             _f(r["rss_kb"] and r["rss_kb"] / 1024, "%.1f"),
                             " (capped)" if r["capped"] else "")
        if r.get("warn"):
            state += "  CHECK: " + r["warn"]
    return "  [%s run %d/%d] %-9s %s" % (wl.name, r["run"], runs,
                                        r["client"], state)


def summarise(res):
    """Per client: medians over its good runs, and % of the same run's
    limit (median of the per-run ratios)."""
    rows = res["rows"]
    limit = {r["run"]: r for r in rows if r["client"] == "limit" and
             not r["error"]}
    out = []
    order = []
    for r in rows:
        if r["client"] not in order:
            order.append(r["client"])
    for name in order:
        mine = [r for r in rows if r["client"] == name]
        good = [r for r in mine if not r["error"]]
        ratios = [r["rate"] / limit[r["run"]]["rate"] for r in good
                  if r["run"] in limit and limit[r["run"]]["rate"] > 0]
        s = {"client": name, "runs": len(mine), "good": len(good),
             "errors": [r["error"] for r in mine if r["error"]],
             "warns": [r["warn"] for r in mine if r.get("warn")],
             "capped": sum(1 for r in good if r["capped"])}
        for k in ("rate", "mbps", "wall", "cpu", "rss_kb", "dovecot_cpu",
                  "sink_cpu", "delivered"):
            s[k] = med([r[k] for r in good])
        s["ratio"] = med(ratios)
        s["busy"] = med([(r["cpu"] + r["dovecot_cpu"] + r["sink_cpu"]) /
                         r["wall"] for r in good if r["wall"] > 0])
        out.append(s)
    return out


def fmt_pct(r):
    """A ratio as a percentage: one decimal below 10%."""
    if r is None:
        return "-"
    return "%.1f%%" % (100 * r) if r < 0.1 else "%.0f%%" % (100 * r)


def _f(v, fmt):
    return "-" if v is None else fmt % v


def _client_note(b, name):
    c = b.clients.get(name)
    return c.note if c else ""


def throughput_table(b, res):
    lines = ["| client | delivery | msg/s | MB/s | % of limit | wall s | "
             "fetcher CPU s | Dovecot CPU s | sink CPU s | cores busy | "
             "fetcher peak RSS MB | good runs |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in summarise(res):
        c = b.clients[s["client"]]
        runs = "%d/%d" % (s["good"], s["runs"])
        if s["capped"]:
            runs += ", %d capped at %.0f s" % (s["capped"], b.cap)
        if s["warns"]:
            runs += ", %d failed a check (below)" % len(s["warns"])
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | "
                     "%s | %s |" % (
                         s["client"], c.delivery,
                         _f(s["rate"], "%.0f"), _f(s["mbps"], "%.1f"),
                         fmt_pct(s["ratio"])
                         if s["client"] != "limit" else "100%",
                         _f(s["wall"], "%.2f"), _f(s["cpu"], "%.2f"),
                         _f(s["dovecot_cpu"], "%.2f"),
                         _f(s["sink_cpu"], "%.2f") if c.delivery != "none"
                         else "-",
                         _f(s["busy"], "%.2f"),
                         _f(s["rss_kb"] and s["rss_kb"] / 1024, "%.1f"),
                         runs))
    errs = []
    for s in summarise(res):
        for e in sorted(set(s["errors"])):
            errs.append("- %s: %s" % (s["client"], e))
        for w in sorted(set(s["warns"])):
            errs.append("- %s: CHECK FAILED: %s" % (s["client"], w))
    for r in res["rows"]:
        if r.get("log_tail"):
            last = [x for x in r["log_tail"].splitlines() if x.strip()]
            if last:
                errs.append("  - %s run %d, last log line: `%s`" % (
                    r["client"], r["run"], last[-1][:200]))
    if res.get("missing"):
        errs.append("- not installed: %s" % ", ".join(res["missing"]))
    return "\n".join(lines) + ("\n\n" + "\n".join(errs) if errs else "")


def big_table(b, res):
    lines = ["| client | peak RSS MB | wall s | fetcher CPU s | result |",
             "|---|---:|---:|---:|---|"]
    for s in summarise(res):
        state = "ok" if not s["errors"] else "; ".join(s["errors"])
        if s["capped"]:
            state = "stopped after 60 s (RSS up to then)"
        lines.append("| %s | %s | %s | %s | %s |" % (
            s["client"], _f(s["rss_kb"] and s["rss_kb"] / 1024, "%.1f"),
            _f(s["wall"], "%.1f"), _f(s["cpu"], "%.2f"), state))
    return "\n".join(lines)


def failed_checks(b):
    bad = []
    for name, res in b.results.items():
        if res.get("kind") == "failed":
            bad.append(name)
        for r in res.get("rows", []):
            if (r.get("error") or r.get("warn")) and \
                    r["client"] in ("limit", "hauld"):
                bad.append(name)
        if res.get("errors"):
            bad.append(name)
    return bad


def _redact_argv(argv, b):
    out = []
    for a in argv:
        a = a.replace(b.dir, "$RUN").replace(b.build, "$BUILD")
        out.append(a)
    return " ".join(shlex.quote(a) for a in out)


def commands(b):
    """The exact command and config of each client (its first run)."""
    seen = {}
    for name, res in b.results.items():
        for r in res.get("rows", []):
            key = (r["client"], res["wl"].proto if hasattr(res["wl"],
                                                            "proto") else "")
            if key in seen:
                continue
            seen[key] = (name, r)
    out = []
    for (client, proto), (wl, r) in sorted(seen.items()):
        out.append("### %s, %s (as in %s)\n" % (client, proto.upper() or
                                                 "-", wl))
        out.append("```\n%s\n```\n" % _redact_argv(r["argv"], b))
        for fname, text in r.get("shown", []):
            t = text.replace(b.dir, "$RUN")
            out.append("`%s`:\n\n```\n%s```\n" % (fname, t))
    return "\n".join(out)


def summary(b, selected):
    """One line per throughput workload: limit, hauld and the peers as
    msg/s (% of the limit)."""
    names = ["limit", "hauld"] + [n for n in clients.PEERS
                                  if n in b.selected]
    L = ["| workload | " + " | ".join(names) + " | hauld peak RSS MB |",
         "|---|" + "---:|" * (len(names) + 1)]
    for wl in selected:
        res = b.results.get(wl.name)
        if not res or res.get("kind") != "throughput" or wl.big:
            continue
        by = {s["client"]: s for s in summarise(res)}
        cells = []
        for n in names:
            s_ = by.get(n)
            if s_ is None or s_["rate"] is None:
                cells.append("-" if n not in by else "failed")
                continue
            cell = "%.0f" % s_["rate"]
            if n != "limit" and s_["ratio"] is not None:
                cell += " (%s)" % fmt_pct(s_["ratio"])
            if s_["capped"]:
                cell += "*"
            if s_["warns"]:
                cell += " !"
            cells.append(cell)
        h = by.get("hauld")
        rss = h["rss_kb"] / 1024 if h and h["rss_kb"] else None
        L.append("| %s | %s | %s |" % (wl.name, " | ".join(cells),
                                        _f(rss, "%.1f")))
    L.append("")
    L.append("msg/s (%% of the limit in the same run), medians of %d "
             "run(s); * stopped after %.0f s (rate over what reached the "
             "sink by then); ! every message was delivered but a check on "
             "the server failed (see the workload's section)." % (b.runs,
                                                                 b.cap))
    return "\n".join(L)


def render(b, selected):
    i = b.info
    L = ["# haul benchmark: %s on %s" % (i["started"], i["host"]), ""]
    L.append("Written by `bench/bench.py` (`make bench`); "
             "docs/performance.md explains the workloads, the targets "
             "and what limits them.")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append("- %s, %d cores, %.0f GB; %s; kernel %s" % (
        i["cpu"], i["cores"], i["mem_gb"], i["os"], i["kernel"]))
    L.append("- load average at the start %.2f %.2f %.2f, at the end "
             "%.2f %.2f %.2f (other work on the machine competes for the "
             "same cores: compare ratios within one run, not absolute "
             "numbers across runs)" % (i["load_start"] + i["load_end"]))
    L.append("- run time %.0f s; %d run(s) per throughput workload, the "
             "median is shown; peers stopped after %.0f s" % (
                 i["duration"], b.runs, b.cap))
    L.append("- source tree: %s; hauld built with the default `-O2 -g`, "
             "no test hooks" % i.get("tree", "?"))
    L.append("- versions: " + "; ".join(
        "%s %s" % (k, v) if not v.lower().startswith(k.lower()) else v
        for k, v in i["versions"].items()))
    L.append("- command: `%s`" % " ".join(
        shlex.quote(a) for a in b.argv_shown))
    L.append("")
    if any(getattr(w, "kind", "") == "throughput" for w in selected):
        L.append("## Summary")
        L.append("")
        L.append(summary(b, selected))
        L.append("")
    L.append("Columns: msg/s and MB/s over the client's wall time (start to "
             "exit: connect, TLS, login, listing, fetch, delivery, "
             "removal); *%% of limit*: the rate over the rate of `limit` "
             "(the read-and-discard reference client) in the same run; CPU "
             "seconds of the fetcher (with its children), of all Dovecot "
             "processes and of the sink; *cores busy*: their sum over the "
             "wall time (%d cores here); peak RSS of the fetcher." %
             i["cores"])
    L.append("")
    for wl in selected:
        res = b.results.get(wl.name)
        if res is None:
            continue
        L.append("## %s: %s" % (wl.name, wl.describe()))
        L.append("")
        kind = res.get("kind")
        if kind == "failed":
            L.append("FAILED: " + res["error"])
        elif kind == "throughput" and wl.big:
            L.append(big_table(b, res))
        elif kind == "throughput":
            L.append(throughput_table(b, res))
        elif "markdown" in res:
            L.append(res["markdown"])
        L.append("")
    L.append("## Clients")
    L.append("")
    for c in b.clients.values():
        if c.name in b.selected:
            L.append("- **%s**: %s" % (c.name, c.note))
    L.append("")
    L.append("## Exact commands and configurations")
    L.append("")
    L.append("`$RUN` is a fresh directory per run, `$BUILD` the build "
             "directory; passwords are shown as `********`.")
    L.append("")
    L.append(commands(b))
    for name, res in b.results.items():
        if res.get("commands"):
            L.append("### %s\n" % name)
            L.append(res["commands"])
    return "\n".join(L) + "\n"
