#!/usr/bin/env python3
"""haul integration test harness (Python 3 stdlib only).

    python3 tests/integration/run.py --build BUILD [-k PATTERN] [-v] [--keep]
                                      [--list] [FILE...]

Discovers tests/integration/test_*.py (or the FILEs given) and runs, per
module in file order: setup_module(env), every test_* function (definition
order), teardown_module(env).  Any of them may take the `env` argument or
none.  A test passes if it returns, is skipped if it raises Skip
(haulfix.Skip, also unittest.SkipTest), and fails on any other exception or
on its timeout.  See tests/integration/README.md.

Output: one line per test ("ok   NAME (1.2s)", "FAIL NAME: reason" plus the
traceback, "skip NAME: reason"), and as the very last line
"integration: N passed, N failed, N skipped".  Exit status 1 if any failed.
"""

import argparse
import fnmatch
import importlib.util
import inspect
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
INTEGRATION_DIR = os.path.join(TOP, "tests", "integration")
FIXTURES_DIR = os.path.join(TOP, "tests", "fixtures")
sys.path[:0] = [FIXTURES_DIR, INTEGRATION_DIR]

import haulfix  # noqa: E402
from haulfix import Skip  # noqa: E402

DEFAULT_TIMEOUT = 120      # per test, seconds; @haulfix.timeout(s) overrides
SETUP_TIMEOUT = 120        # setup_module; module attribute SETUP_TIMEOUT
TEARDOWN_TIMEOUT = 60      # teardown_module; module attribute TEARDOWN_TIMEOUT


class TestTimeout(BaseException):
    """Raised by SIGALRM.  A BaseException so that `except Exception` in
    test or fixture code cannot swallow it."""


class Env:
    """What a test gets.  One Env per module: setup_module may store shared
    fixtures on it (env.dovecot = ...), the module's tests see them.

    top      repo root             build    absolute build dir (--build)
    hauld    BUILD/hauld           milter   BUILD/haul-milter
    haulctl  BUILD/haulctl         helpers  BUILD/tests (test helper bins)
    tmpdir   fresh empty dir per test (and one for setup_module), removed
             at the end of the run unless --keep
    verbose  -v given              ci       CI=true in the environment
    """

    def __init__(self, args, root):
        self.top = TOP
        self.build = os.path.abspath(args.build)
        self.hauld = os.path.join(self.build, "hauld")
        self.milter = os.path.join(self.build, "haul-milter")
        self.haulctl = os.path.join(self.build, "haulctl")
        self.helpers = os.path.join(self.build, "tests")
        self.fixtures = FIXTURES_DIR
        self.verbose = args.verbose
        self.ci = haulfix.is_ci()
        self.root = root
        self.tmpdir = None

    def need(self, *paths):
        """Skip (fail under CI=true) unless these programs exist; bare names
        are looked up in BUILD first, then PATH.  Returns the paths."""
        out = []
        for p in paths:
            cand = os.path.join(self.build, p)
            out.append(cand if "/" not in p and os.access(cand, os.X_OK)
                       else p)
        haulfix.need_binaries(*out)
        return out[0] if len(out) == 1 else out

    def log(self, msg):
        if self.verbose:
            print("    | " + str(msg), flush=True)

    def _new_tmpdir(self, name):
        d = os.path.join(self.root, name)
        os.makedirs(d, exist_ok=True)
        self.tmpdir = d
        return d


def _on_alarm(signum, frame):
    raise TestTimeout("timed out")


def _on_term(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def _call(fn, env, seconds):
    """Call fn(env) or fn() under a SIGALRM timeout."""
    try:
        nparams = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        nparams = 0
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn(env) if nparams else fn()
    except TestTimeout as e:
        e.args = ("timed out after %gs" % seconds,)
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _reason(exc):
    if isinstance(exc, TestTimeout):
        return str(exc)
    msg = str(exc).strip().splitlines()
    return "%s%s" % (type(exc).__name__, ": " + msg[0] if msg else "")


def _is_skip(exc):
    import unittest
    return isinstance(exc, (Skip, unittest.SkipTest))


class Runner:
    def __init__(self, args):
        self.args = args
        self.passed = self.failed = self.skipped = 0

    def out(self, line):
        print(line, flush=True)

    def ok(self, name, secs):
        self.passed += 1
        self.out("ok   %s (%.1fs)" % (name, secs))

    def skip(self, name, reason):
        self.skipped += 1
        self.out("skip %s: %s" % (name, reason))

    def fail(self, name, exc):
        self.failed += 1
        self.out("FAIL %s: %s" % (name, _reason(exc)))
        tb = exc.__traceback__  # drop the harness's own leading frames
        while tb is not None and tb.tb_next is not None and \
                tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next
        if isinstance(exc, TestTimeout):  # where it was stuck
            text = "".join(traceback.format_tb(tb))
        else:
            text = "".join(traceback.format_exception(type(exc), exc, tb))
        for line in text.rstrip().splitlines():
            self.out("    " + line)
        if self.args.verbose:
            for f in haulfix.live_fixtures():
                logs = f.logs(25)
                if logs:
                    self.out("    --- %r log tail:" % f)
                    for line in logs.splitlines():
                        self.out("    | " + line)

    def selected(self, modname, tests):
        pat = self.args.k
        if not pat:
            return tests
        out = []
        for name, fn in tests:
            full = "%s.%s" % (modname, name)
            if any(c in pat for c in "*?["):
                hit = fnmatch.fnmatch(full, pat) or fnmatch.fnmatch(name, pat)
            else:
                hit = pat in full
            if hit:
                out.append((name, fn))
        return out

    def run_module(self, path, root):
        modname = os.path.splitext(os.path.basename(path))[0]
        try:
            spec = importlib.util.spec_from_file_location(
                "haul_it_" + modname, path)
            mod = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        except Exception as e:
            self.fail(modname + " (import)", e)
            return
        tests = sorted(((n, f) for n, f in vars(mod).items()
                        if n.startswith("test_") and inspect.isfunction(f)
                        and f.__module__ == mod.__name__),
                       key=lambda t: t[1].__code__.co_firstlineno)
        tests = self.selected(modname, tests)
        if self.args.list:
            for n, _ in tests:
                self.out("%s.%s" % (modname, n))
            return
        if not tests:
            return
        env = Env(self.args, root)
        before = set(map(id, haulfix.live_fixtures()))
        setup = getattr(mod, "setup_module", None)
        teardown = getattr(mod, "teardown_module", None)
        default_to = getattr(mod, "TIMEOUT", DEFAULT_TIMEOUT)
        setup_exc = None
        try:
            if setup:
                env._new_tmpdir(modname + ".setup")
                _call(setup, env, getattr(mod, "SETUP_TIMEOUT", SETUP_TIMEOUT))
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            setup_exc = e
            if not _is_skip(e):
                self.fail(modname + ".setup_module", e)
                self.failed -= 1  # counted per test below
        try:
            for name, fn in tests:
                full = "%s.%s" % (modname, name)
                if setup_exc is not None:
                    if _is_skip(setup_exc):
                        self.skip(full, str(setup_exc))
                    else:
                        self.failed += 1
                        self.out("FAIL %s: setup_module failed: %s"
                                 % (full, _reason(setup_exc)))
                    continue
                env._new_tmpdir(full)
                t0 = time.monotonic()
                try:
                    _call(fn, env, getattr(fn, "timeout", default_to))
                except KeyboardInterrupt:
                    raise
                except BaseException as e:
                    if _is_skip(e):
                        self.skip(full, str(e))
                    else:
                        self.fail(full, e)
                else:
                    self.ok(full, time.monotonic() - t0)
        finally:
            if teardown:
                env._new_tmpdir(modname + ".teardown")
                try:
                    _call(teardown, env,
                          getattr(mod, "TEARDOWN_TIMEOUT", TEARDOWN_TIMEOUT))
                except KeyboardInterrupt:
                    raise
                except BaseException as e:
                    if not _is_skip(e):
                        self.fail(modname + ".teardown_module", e)
            leaked = [f for f in haulfix.live_fixtures()
                      if id(f) not in before]
            if leaked:
                names = haulfix.stop_all()
                self.failed += 1
                self.out("FAIL %s: fixtures left running after "
                         "teardown_module (stopped now): %s"
                         % (modname, ", ".join(names)))


def secrets_check(runner, root):
    """I5 over the whole run: no registered test secret (passwords, tokens,
    signing keys; hauldrun.register_secret) in any hauld run's output or
    in any *.log file under the run's temp dir (daemon and haul-milter
    logs).  Reported as one result, "harness.secrets_in_logs"."""
    import hauldrun
    t0 = time.monotonic()
    files = []
    for top, _, names in os.walk(root):
        files += [os.path.join(top, n) for n in names if n.endswith(".log")]
    if not hauldrun.LOGS and not files:
        return
    hits = hauldrun.secret_hits(files=files)
    name = "harness.secrets_in_logs"
    if hits:
        runner.fail(name, AssertionError(
            "test secrets in logs: " + "; ".join(
                "%s in %s" % (f, w) for w, f in hits[:10])))
    else:
        runner.ok(name, time.monotonic() - t0)
        runner.out("     (%d secrets, %d hauld runs, %d log files)" % (
            len(hauldrun.SECRETS), len(hauldrun.LOGS),
            len(set(files) | hauldrun.LOG_FILES)))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("HAUL_BUILD", "build"),
                    help="build dir holding hauld, haul-milter, haulctl")
    ap.add_argument("-k", metavar="PATTERN",
                    help="run tests whose 'module.test' name contains "
                    "PATTERN (or matches it as a glob if it has *?[)")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="fixture actions on stderr, log tails on failure")
    ap.add_argument("--keep", action="store_true",
                    help="keep temp dirs (run dir and fixture dirs)")
    ap.add_argument("--list", action="store_true", help="list tests only")
    ap.add_argument("files", nargs="*", help="test files (default: all "
                    "tests/integration/test_*.py)")
    args = ap.parse_args(argv)
    if args.verbose:
        haulfix.set_verbose(True)
    if args.keep:
        os.environ["HAULFIX_KEEP"] = "1"
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.signal(signal.SIGTERM, _on_term)
    signal.signal(signal.SIGHUP, _on_term)
    haulfix.become_subreaper()
    if os.geteuid() == 0:
        haulfix.cleanup_stale(verbose=args.verbose)

    files = args.files or sorted(
        os.path.join(INTEGRATION_DIR, n) for n in os.listdir(INTEGRATION_DIR)
        if n.startswith("test_") and n.endswith(".py"))
    runner = Runner(args)
    root = tempfile.mkdtemp(prefix=haulfix.TMP_PREFIX + "run-")
    os.chmod(root, 0o755)
    if os.geteuid() == 0:  # the registry is root's (as are the fixtures)
        haulfix.register_dir(root, "harness-tmp")  # removed if killed
    interrupted = False
    try:
        for path in files:
            runner.run_module(os.path.abspath(path), root)
        if not args.list:
            secrets_check(runner, root)
    except KeyboardInterrupt as e:
        interrupted = True
        runner.failed += 1
        runner.out("FAIL interrupted (%s)" % (e or "KeyboardInterrupt"))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        left = haulfix.stop_all()
        if left and not interrupted:
            runner.failed += 1
            runner.out("FAIL harness: fixtures still running at exit "
                       "(stopped now): %s" % ", ".join(left))
        if args.keep:
            runner.out("kept %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
        if os.geteuid() == 0:
            haulfix.unregister_dir(root)
    if not args.list:
        runner.out("integration: %d passed, %d failed, %d skipped"
                   % (runner.passed, runner.failed, runner.skipped))
    return 1 if runner.failed else 0


if __name__ == "__main__":
    sys.exit(main())
