# ISC License; see LICENSE.
"""The manual pages and systemd units against the code: every page renders
without warnings (mandoc -T lint and/or groff -ww), haul.conf(5) documents
every option of lib/config_schema.c in its section with its default, range
and values, haulctl(8) every command, protocol verb, status column, JSON
field and metric, each page every getopt letter of its binary; the
configuration examples load; the units start the daemons the documented
way.  No root and no fixtures needed."""

import os
import re
import shutil
import subprocess

from haulfix import Skip

TIMEOUT = 60

TOP = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
MAN = os.path.join(TOP, "man")
UNITS = os.path.join(TOP, "etc", "systemd")
PAGES = ("hauld.8", "haul-milter.8", "haulctl.8", "haul.conf.5")
# Binary, its main source, its page.
BINARIES = (("hauld", "fetcher/main.c", "hauld.8"),
            ("haul-milter", "plugin/main.c", "haul-milter.8"),
            ("haulctl", "ctl/main.c", "haulctl.8"))
# Schema table -> .Sh of haul.conf(5).
SECTIONS = (("global_opts", "GLOBAL SECTION"),
            ("delivery_opts", "DELIVERY SECTION"),
            ("milter_opts", "MILTER SECTION"),
            ("account_opts", "ACCOUNT SECTION"))
# mdoc macros that may appear inside a line (stripped to get plain words).
INLINE_MACROS = set("""Ac Ao Ap Aq Ar Bc Bo Bq Brc Bro Brq Cm Dc Do Dq Dv
    Em Er Ev Fa Fl Ic Li Nm No Ns Oc Oo Op Pa Pc Pf Po Pq Qc Ql Qo Qq Sc So
    Sq Sx Sy Va Xr""".split())


def _read(*parts):
    with open(os.path.join(TOP, *parts), encoding="utf-8") as f:
        return f.read()


def _page(name):
    return _read("man", name)


def _sections(src):
    """{'.Sh title': [lines]} and {'.Ss title': [lines]} of an mdoc page."""
    out, cur = {}, None
    for line in src.splitlines():
        m = re.match(r"\.S[hs] (.*)$", line)
        if m:
            cur = m.group(1).strip('"')
            out[cur] = []
        elif cur is not None:
            out[cur].append(line)
    return out


def _plain(lines):
    """Source lines as plain words: macros dropped, escapes resolved."""
    words = []
    for line in lines:
        if line.startswith(".\\\""):
            continue
        toks = line.split()
        if line.startswith(".") and toks:
            toks = toks[1:]
        for t in toks:
            if t in INLINE_MACROS:
                continue
            t = (t.replace("\\&", "").replace("\\e", "\\")
                 .replace("\\(dq", '"').replace("\\(aq", "'")
                 .replace("\\-", "-"))
            if t:
                words.append(t)
    return " ".join(words)


def _items(lines):
    """The items of the first .Bl list in lines: [(it_line, body_lines)],
    nested lists kept inside their item's body."""
    items, depth, cur = [], 0, None
    for line in lines:
        if line.startswith(".Bl"):
            depth += 1
            if depth == 1:
                continue
        elif line.startswith(".El"):
            depth -= 1
            if depth == 0:
                break
        elif line.startswith(".It") and depth == 1:
            cur = (line, [])
            items.append(cur)
            continue
        if cur is not None and depth >= 1:
            cur[1].append(line)
    return items


def _schema():
    """{table: [(kind, name, args, ...)]} and {enum table: [names]}."""
    src = _read("lib", "config_schema.c")
    enums = {}
    for m in re.finditer(r"const char \*const (config_\w+_names)\[\] = "
                         r"\{(.*?)\};", src, re.S):
        enums[m.group(1)] = re.findall(r'"([^"]+)"', m.group(2))
    tables = {}
    for m in re.finditer(r"static const struct optdef (\w+)\[\] = \{(.*?)\n\};",
                         src, re.S):
        rows = []
        for r in re.finditer(r'\b(STR|CONV|ENUM|UINT|BOOL|LIST)\(\s*"(\w+)"'
                             r'\s*,(.*?)\)\s*,', m.group(2), re.S):
            args = [a.strip() for a in r.group(3).split(",")]
            rows.append((r.group(1), r.group(2), args))
        tables[m.group(1)] = rows
    assert set(t for t, _ in SECTIONS) <= set(tables), sorted(tables)
    assert all(tables[t] for t, _ in SECTIONS), "schema rows not found"
    return tables, enums


def _getopt_letters(source):
    m = re.search(r'getopt\(argc, argv, "([^"]+)"\)', _read(source))
    assert m, "no getopt() in " + source
    return set(c for c in m.group(1) if c.isalnum())


# --- rendering ------------------------------------------------------------

def test_pages_render_without_warnings(env):
    """mandoc -T lint (warnings and worse) and groff -ww, whichever exist:
    no message at all.  groff comes with man-db on every Debian system."""
    mandoc, groff = shutil.which("mandoc"), shutil.which("groff")
    if not mandoc and not groff:
        msg = "neither mandoc nor groff installed (package groff-base)"
        if env.ci:
            raise AssertionError("CI=true: " + msg)
        raise Skip(msg)
    problems = []
    cenv = dict(os.environ, LC_ALL="C")
    for page in PAGES:
        path = os.path.join(MAN, page)
        assert os.path.exists(path), path
        if mandoc:
            r = subprocess.run([mandoc, "-T", "lint", "-W", "warning", path],
                               capture_output=True, text=True, env=cenv,
                               timeout=30)
            for line in (r.stdout + r.stderr).splitlines():
                if re.search(r": (WARNING|ERROR|UNSUPP|BADARG|SYSERR): ",
                             line):
                    problems.append(line)
            r = subprocess.run([mandoc, "-T", "ascii", path],
                               capture_output=True, text=True, env=cenv,
                               timeout=30)
            text = re.sub(r".\x08", "", r.stdout)  # no overstrike
            assert r.returncode == 0 and "NAME" in text, page
        if groff:
            r = subprocess.run([groff, "-mandoc", "-ww", "-z", path],
                               capture_output=True, text=True, env=cenv,
                               timeout=30)
            problems += ["groff: %s: %s" % (page, l)
                         for l in r.stderr.splitlines()]
            if r.returncode != 0:
                problems.append("groff: %s: exit %d" % (page, r.returncode))
    env.log("checked with: %s" % ", ".join(
        t for t in ("mandoc" if mandoc else "", "groff" if groff else "")
        if t))
    assert not problems, "\n".join(problems)


def test_page_headers():
    """.Dt and .Nm match the file name; every page has the usual
    sections and names its siblings."""
    for page in PAGES:
        name, sec = page.rsplit(".", 1)
        src = _page(page)
        assert re.search(r"^\.Dt %s %s$" % (re.escape(name.upper()), sec),
                         src, re.M), page + ": .Dt"
        assert re.search(r"^\.Nm %s$" % re.escape(name), src, re.M), \
            page + ": .Nm"
        secs = _sections(src)
        for s in ("NAME", "DESCRIPTION", "SEE ALSO"):
            assert s in secs, "%s: no %s" % (page, s)
        for other in PAGES:
            if other != page:
                o, osec = other.rsplit(".", 1)
                assert ".Xr %s %s" % (o, osec) in src, \
                    "%s does not refer to %s" % (page, other)
    for _, _, page in BINARIES:
        secs = _sections(_page(page))
        for s in ("SYNOPSIS", "FILES", "EXIT STATUS", "EXAMPLES"):
            assert s in secs, "%s: no %s" % (page, s)
    for page in ("hauld.8", "haul-milter.8"):
        assert "SIGNALS" in _sections(_page(page)), page


# --- options and commands -------------------------------------------------

def test_every_getopt_letter_documented(env):
    """Each page documents exactly its binary's getopt letters, in the
    SYNOPSIS and as an .It Fl item; the -h text of a built binary too."""
    for binary, source, page in BINARIES:
        letters = _getopt_letters(source)
        secs = _sections(_page(page))
        syn = set()
        for line in secs["SYNOPSIS"]:
            for m in re.finditer(r"\bFl (\S+)", line):
                syn |= set(m.group(1))
        assert syn == letters, "%s SYNOPSIS %s, getopt %s" % (
            page, sorted(syn), sorted(letters))
        items = set()
        for line in secs["DESCRIPTION"]:
            m = re.match(r"\.It Fl (\S)(\s|$)", line)
            if m:
                items.add(m.group(1))
        assert items == letters, "%s options %s, getopt %s" % (
            page, sorted(items), sorted(letters))
        built = os.path.join(env.build, binary)
        if os.access(built, os.X_OK):
            r = subprocess.run([built, "-h"], capture_output=True,
                               text=True, timeout=10)
            assert r.returncode == 0, binary + " -h"
            usage = set(re.findall(r"^\s+-(\w)\b", r.stdout, re.M))
            assert usage == letters, "%s -h lists %s" % (binary,
                                                         sorted(usage))


def test_haul_conf_documents_every_option():
    """Every schema row appears in its section of haul.conf(5) as an
    .It Ic item, with its default (or 'unset'/'Required'), its range and
    its values; and the page lists no option the schema lacks."""
    tables, enums = _schema()
    secs = _sections(_page("haul.conf.5"))
    bad = []
    for table, title in SECTIONS:
        assert title in secs, "haul.conf.5 has no " + title
        docs = {}
        for it, body in _items(secs[title]):
            names = re.findall(r"\bIc (\w+)", it)
            assert names, "item without .Ic: " + it
            for n in names:
                docs[n] = _plain([it] + body)
        rows = {name: (kind, args) for kind, name, args in tables[table]}
        for extra in sorted(set(docs) - set(rows)):
            bad.append("%s: %s is not in the schema" % (title, extra))
        for name, (kind, args) in rows.items():
            if name not in docs:
                bad.append("%s: %s is not documented" % (title, name))
                continue
            text = docs[name]
            where = "%s: %s" % (title, name)
            m = re.search(r"[Tt]he default is (\S+)", text)
            got = m.group(1).strip('".,;()') if m else None
            if kind == "UINT":
                want = args[0]
                r = re.search(r"Range (\d+) to (\d+)", text)
                if not r or r.groups() != (args[1], args[2]):
                    bad.append("%s: range should read 'Range %s to %s'" % (
                        where, args[1], args[2]))
            elif kind == "BOOL":
                want = "true" if args[0] == "1" else "false"
            elif kind == "LIST" or args[0] == "NULL":
                want = None
            else:
                want = args[0].strip('"')
            if kind == "ENUM":
                for v in enums[args[1]]:
                    if not re.search(r"(^|\s)%s(\s|$|[.,;:)])" %
                                     re.escape(v), text):
                        bad.append("%s: value %s not listed" % (where, v))
            if "OPT_REQUIRED" in args:
                if "Required" not in text:
                    bad.append("%s: should say Required" % where)
            elif want is None:
                if not re.search(r"[Uu]nset by default|[Rr]equired|"
                                 r"[Tt]he default is", text):
                    bad.append("%s: should say 'unset by default', its "
                               "default, or when it is required" % where)
            elif got != want:
                bad.append("%s: documented default %r, schema %r" % (
                    where, got, want))
    assert not bad, "\n".join(bad)


def test_haulctl_documents_every_command():
    """haulctl(8) against ctl/main.c and fetcher/control.c: commands,
    protocol verbs, table columns, JSON fields, states, error classes and
    metric names."""
    page = _page("haulctl.8")
    plain = _plain(page.splitlines())
    ctl = _read("ctl", "main.c")
    control = _read("fetcher", "control.c")
    bad = []
    cmds = set(re.findall(r'strcmp\(cmd, "([a-z-]+)"\)', ctl))
    assert {"status", "fetch", "pause", "resume", "metrics"} <= cmds, cmds
    for c in sorted(cmds):
        if not re.search(r"^\.It Cm %s\b" % re.escape(c), page, re.M):
            bad.append("command %s has no .It Cm item" % c)
    for flag in re.findall(r'strcmp\(argv\[i\], "--(\w+)"\)', ctl):
        if "Fl \\-%s" % flag not in page:
            bad.append("--%s not documented" % flag)
    proto = _plain(_sections(page)["Control protocol"])
    for verb in sorted(set(re.findall(r'strcmp\(cmd, "([a-z-]+)"\)',
                                      control))):
        if not re.search(r"(^|\s)%s(\s|$|[.,;:])" % re.escape(verb), proto):
            bad.append("protocol verb %s not in Control protocol" % verb)
    m = re.search(r'"ACCOUNT",(.*?)\);', control, re.S)
    assert m, "status table header not found in control.c"
    for col in ["ACCOUNT"] + re.findall(r'"([A-Z-]+)"', m.group(1)):
        if not re.search(r"^\.It Li %s$" % re.escape(col), page, re.M):
            bad.append("status column %s has no .It Li item" % col)
    m = re.search(r"^status_json\(.*?^}", control, re.S | re.M)
    assert m, "status_json() not found in control.c"
    for field in sorted(set(re.findall(r'\\"(\w+)\\":', m.group(0)))):
        if not re.search(r"\b%s\b" % field, plain):
            bad.append("JSON field %s not documented" % field)
    m = re.search(r"^state_name\(.*?^}", control, re.S | re.M)
    assert m, "state_name() not found in control.c"
    for st in re.findall(r'"([a-z]+)"', m.group(0)):
        if "Cm %s" % st not in page:
            bad.append("state %s not documented" % st)
    m = re.search(r"^err_class_name\(.*?^}", _read("lib", "proto.c"),
                  re.S | re.M)
    assert m, "err_class_name() not found in lib/proto.c"
    for cls in re.findall(r'return "([a-z]+)";', m.group(0)):
        if "Cm %s" % cls not in page:
            bad.append("error class %s not documented" % cls)
    metrics = re.findall(r'metric\(e, out, "(haul_\w+)"', control)
    assert len(metrics) >= 5, metrics
    for name in metrics:
        if not re.search(r"^\.It Li %s$" % name, page, re.M):
            bad.append("metric %s has no .It Li item" % name)
    assert not bad, "\n".join(bad)


# --- examples -------------------------------------------------------------

def _literal_blocks(src):
    return [b.replace("\\e", "\\").replace("\\&", "")
            for b in re.findall(r"^\.Bd -literal[^\n]*\n(.*?)^\.Ed$", src,
                                re.S | re.M)]


def _check(env, binaries, conf):
    for b in binaries:
        r = subprocess.run([b, "-n", "-c", conf], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 0 and "configuration OK" in r.stdout, \
            "%s -n %s:\n%s%s" % (os.path.basename(b), conf, r.stdout,
                                 r.stderr)


def test_configuration_examples_load(env):
    """The complete example of haul.conf(5) (main file plus account file,
    with the password files it names) and every configuration fragment of
    the pages pass hauld -n and haul-milter -n."""
    hauld, milter = env.need("hauld", "haul-milter")
    blocks = _literal_blocks(_page("haul.conf.5"))
    main = [b for b in blocks if b.startswith("# /etc/haul/haul.conf")]
    accts = [b for b in blocks if re.search(r'^account "', b, re.M)]
    assert len(main) == 1 and len(accts) == 1, "examples not found"
    d = env.tmpdir
    os.makedirs(os.path.join(d, "accounts.d"))
    os.makedirs(os.path.join(d, "secrets"))
    with open(os.path.join(d, "haul.conf"), "w") as f:
        f.write(main[0])
    with open(os.path.join(d, "accounts.d", "example.conf"), "w") as f:
        f.write(accts[0])
    for rel in re.findall(r'password_file = "([^"]+)"', accts[0]):
        assert not rel.startswith("/"), "use relative paths in the example"
        p = os.path.normpath(os.path.join(d, "accounts.d", rel))
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, b"secret\n")
        os.close(fd)
    _check(env, (hauld, milter), os.path.join(d, "haul.conf"))
    n = 0
    for page in PAGES:
        for b in _literal_blocks(_page(page)):
            if not re.match(r"(global|delivery|milter) \{", b):
                continue
            n += 1
            conf = os.path.join(d, "fragment%d.conf" % n)
            with open(conf, "w") as f:
                f.write(b)
            _check(env, (hauld, milter), conf)
    assert n >= 3, "configuration fragments not found"


# --- systemd units --------------------------------------------------------

def _unit(name):
    """{key: [values]} of a unit file (sections flattened)."""
    out = {}
    with open(os.path.join(UNITS, name)) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;[":
                continue
            k, _, v = line.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_systemd_units(env):
    """Both units run their daemon in the foreground with the documented
    flags, share /run/haul safely, and give hauld more than
    shutdown_timeout to stop; systemd-analyze verify accepts them."""
    tables, _ = _schema()
    shutdown = int(dict((n, a) for _, n, a in tables["global_opts"])
                   ["shutdown_timeout"][0])
    units = {"hauld.service": ("hauld", "fetcher/main.c"),
             "haul-milter.service": ("haul-milter", "plugin/main.c")}
    parsed = {u: _unit(u) for u in units}
    for u, (binary, source) in units.items():
        k = parsed[u]
        exe = k["ExecStart"][0].split()
        assert os.path.basename(exe[0]) == binary, u
        assert exe[1:] == ["-f", "-c", "/etc/haul/haul.conf"], u
        assert {"f", "c"} <= _getopt_letters(source)
        for key, want in (("Type", "simple"), ("User", "haul"),
                          ("RuntimeDirectory", "haul"),
                          ("RuntimeDirectoryPreserve", "yes"),
                          ("NoNewPrivileges", "yes"),
                          ("ProtectSystem", "strict"),
                          ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                          ("KillSignal", "SIGTERM"),
                          ("Restart", "on-failure")):
            assert k.get(key) == [want], "%s: %s=%s" % (u, key, k.get(key))
        assert "/run/haul" in " ".join(k.get("ReadWritePaths", [])), u
    # systemd chowns a RuntimeDirectory recursively to the unit's user and
    # group: two units sharing /run/haul must agree on both.
    a, b = parsed["hauld.service"], parsed["haul-milter.service"]
    assert a["User"] == b["User"] and a["Group"] == b["Group"]
    assert a["RuntimeDirectoryMode"] == b["RuntimeDirectoryMode"]
    assert a.get("StateDirectory") == ["haul"]
    assert "/var/lib/haul" in a["ReadWritePaths"][0].split()
    assert "postfix" in b.get("SupplementaryGroups", [""])[0].split()
    assert int(a["TimeoutStopSec"][0]) >= shutdown + 10
    assert "-USR1" in b["ExecReload"][0]

    analyze = shutil.which("systemd-analyze")
    if not analyze:
        env.log("systemd-analyze not installed: verify skipped")
        return
    d = os.path.join(env.tmpdir, "units")
    os.makedirs(d)
    for u, (binary, _) in units.items():
        built = os.path.join(env.build, binary)
        if not os.access(built, os.X_OK):
            env.log("%s not built: verify skipped" % built)
            return
        with open(os.path.join(UNITS, u)) as f:
            text = f.read().replace("/usr/local/sbin/" + binary, built)
        with open(os.path.join(d, u), "w") as f:
            f.write(text)
    r = subprocess.run([analyze, "verify", "--man=no"] +
                       [os.path.join(d, u) for u in units],
                       capture_output=True, text=True, timeout=60, cwd=d)
    ours = [l for l in (r.stdout + r.stderr).splitlines() if "haul" in l]
    assert r.returncode == 0 and not ours, \
        "systemd-analyze verify:\n" + r.stdout + r.stderr
