# ISC License; see LICENSE.
"""The benchmark harness (bench/bench.py, `make bench`) on a tiny
workload, so that it does not rot between benchmark runs: 20 small
messages over POP3S from a private Dovecot, the reference client and
hauld, one run.  It checks that the harness runs to its end, that both
clients passed its own checks (every Message-ID at the sink exactly once,
the server count right) and that the report has its table.  No numbers
are judged here: `make bench` is where they are measured.
"""

import os
import shutil
import subprocess
import sys

import haulfix
from haulfix import Skip, timeout

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
BENCH = os.path.join(TOP, "bench")


def _cc(env, name, libs):
    """Build bench/NAME.c into the test's temp dir (the test build does
    not make the bench's tools)."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("cc")
    if cc is None:
        raise Skip("no C compiler")
    flags = []
    if libs:
        r = subprocess.run(["pkg-config", "--cflags", "--libs", libs],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise Skip("pkg-config %s failed" % libs)
        flags = r.stdout.split()
    out = os.path.join(env.tmpdir, "tools", name)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    r = subprocess.run([cc, "-O1", "-o", out,
                        os.path.join(BENCH, name + ".c")] + flags,
                       capture_output=True, text=True)
    assert r.returncode == 0, "cc %s.c:\n%s" % (name, r.stderr)
    return out


@timeout(60)
def test_bench_harness_tiny_run(env):
    haulfix.need_root()
    haulfix.need_binaries("dovecot", "smtp-sink", "openssl")
    env.need("hauld")
    _cc(env, "limit", "openssl")
    _cc(env, "runner", None)
    out = os.path.join(env.tmpdir, "report.md")
    r = subprocess.run(
        [sys.executable, os.path.join(BENCH, "bench.py"), "--build",
         env.build, "--tools", os.path.join(env.tmpdir, "tools"),
         "--small", "--runs", "1", "--only", "pop3-20k-keep",
         "--peers", "hauld", "--out", out],
        capture_output=True, text=True, timeout=50, cwd=TOP)
    assert r.returncode == 0, "bench.py exit %d:\n%s\n%s" % (
        r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    lines = [ln for ln in r.stdout.splitlines() if "[pop3-20k-keep" in ln]
    assert len(lines) == 2, r.stdout
    for ln in lines:
        assert "FAILED" not in ln and " 20 msgs" in ln, ln
    with open(out) as f:
        text = f.read()
    assert "## pop3-20k-keep" in text, text[:2000]
    rows = [ln for ln in text.splitlines()
            if ln.startswith("| limit |") or ln.startswith("| hauld |")]
    assert len(rows) == 2, text[:3000]
    assert "## Machine" in text and "load average" in text
