# ISC License; see LICENSE.
"""hauld's Prometheus endpoint (global.metrics_listen): GET /metrics on
loopback answers the same exposition as `haulctl metrics`, parsed here by
a strict little parser (every line HELP, TYPE or a sample of a declared
family; histogram buckets cumulative with +Inf equal to the count); other
paths, methods and malformed or oversized requests get their status
codes; a silent client is dropped.  Fake POP3 server and smtp-sink."""

import http.client
import math
import os
import re
import select
import socket
import time

import fakepki
from fakepop3 import FakePOP3, sample_messages
from hauldrun import Hauld, SmtpSink, free_port
from imaprun import Daemon

TIMEOUT = 60

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_HELP = re.compile(r"^# HELP (%s) (.*)$" % _NAME)
_TYPE = re.compile(r"^# TYPE (%s) (counter|gauge|histogram|summary|"
                   r"untyped)$" % _NAME)
_SAMPLE = re.compile(r"^(%s)(?:\{(.*)\})? (\S+)$" % _NAME)
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"'
                    r'(,|$)')


def parse_prometheus(text):
    """{family: {"type", "help", "samples": [(name, labels, value)]}};
    raises AssertionError on anything outside the text format."""
    fams = {}
    assert text.endswith("\n"), "no final newline"
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d: %r" % (n, line)
        m = _HELP.match(line)
        if m:
            assert m.group(1) not in fams, "HELP twice " + where
            fams[m.group(1)] = {"help": m.group(2), "type": None,
                                "samples": []}
            continue
        m = _TYPE.match(line)
        if m:
            f = fams.get(m.group(1))
            assert f is not None and f["type"] is None and \
                not f["samples"], "TYPE without HELP first " + where
            f["type"] = m.group(2)
            continue
        assert not line.startswith("#"), "stray comment " + where
        m = _SAMPLE.match(line)
        assert m, "not a sample " + where
        name, labels, value = m.group(1), m.group(2), m.group(3)
        fam = name
        if name not in fams:
            fam = re.sub(r"_(bucket|sum|count)$", "", name)
        f = fams.get(fam)
        assert f is not None and f["type"] is not None, \
            "sample of an undeclared family " + where
        if fam != name:
            assert f["type"] == "histogram", where
        lab = {}
        rest = labels or ""
        while rest:
            lm = _LABEL.match(rest)
            assert lm, "bad labels " + where
            assert lm.group(1) not in lab, "label twice " + where
            lab[lm.group(1)] = lm.group(2)
            rest = rest[lm.end():]
        v = float(value)
        assert not math.isnan(v), where
        if f["type"] == "counter" or name.endswith(("_bucket", "_count")):
            assert v >= 0 and v == int(v), "counter value " + where
        f["samples"].append((name, lab, v))
    for name, f in fams.items():
        assert f["type"] is not None, "%s: HELP without TYPE" % name
        if f["type"] == "histogram":
            check_histogram(name, f["samples"])
    return fams


def check_histogram(name, samples):
    """Per label set: buckets in ascending le, cumulative, +Inf last and
    equal to _count, a _sum."""
    series = {}
    for sname, lab, v in samples:
        key = tuple(sorted((k, x) for k, x in lab.items() if k != "le"))
        s = series.setdefault(key, {"buckets": [], "sum": None,
                                    "count": None})
        if sname == name + "_bucket":
            s["buckets"].append((float(lab["le"]), v))
        elif sname == name + "_sum":
            s["sum"] = v
        elif sname == name + "_count":
            s["count"] = v
        else:
            raise AssertionError("%s: stray sample %s" % (name, sname))
    assert series, name
    for key, s in series.items():
        les = [le for le, _ in s["buckets"]]
        assert les == sorted(les) and len(set(les)) == len(les), (name, les)
        assert les and les[-1] == math.inf, (name, key, "no +Inf")
        counts = [c for _, c in s["buckets"]]
        assert counts == sorted(counts), (name, key, "not cumulative",
                                          counts)
        assert s["count"] is not None and s["sum"] is not None, (name, key)
        assert counts[-1] == s["count"], (name, key, counts[-1], s["count"])
        assert s["sum"] >= 0


def value(fams, family, account, sample=None, **labels):
    for name, lab, v in fams[family]["samples"]:
        if name == (sample or family) and lab.get("account") == account \
                and all(lab.get(k) == x for k, x in labels.items()):
            return v
    raise KeyError((family, account, sample, labels))


def setup_module(env):
    env.pki = fakepki.make_pki(os.path.join(env.tmpdir, "pki"))


def _get(port, method="GET", path="/metrics"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def _raw(port, data, t=10):
    """Send data, read until the server closes; the bytes it answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=t) as s:
        if data:
            s.sendall(data)
        out = b""
        while True:
            b = s.recv(65536)
            if not b:
                return out
            out += b


def test_metrics_endpoint(env):
    port = free_port()
    msgs = sample_messages(6)
    with FakePOP3(msgs, users={"u": "p-Mx71"}, tls="implicit",
                  certfile=env.pki.cert, keyfile=env.pki.key) as srv, \
            SmtpSink(os.path.join(env.tmpdir, "sink")) as sink:
        h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "h"))
        h.global_opts["control_socket"] = os.path.join(h.dir, "ctl.sock")
        h.global_opts["metrics_listen"] = "127.0.0.1:%d" % port
        h.smtp(sink.port)
        common = dict(host="localhost", port=srv.port, tls="implicit",
                      ca_file=env.pki.ca_cert, keep=True,
                      deliver_to=["alice@local.test"], poll_interval=3600)
        h.account("acme", password="p-Mx71", user="u", **common)
        # an account whose password the server refuses
        h.account("bad.pw-2", password="wrong-pw", user="u", **common)
        with Daemon(h, debug=False) as d:
            d.wait_log(r"metrics on http://127\.0\.0\.1:%d/metrics" % port)
            assert d.ctl("fetch", "acme").returncode == 0
            assert d.ctl("fetch", "bad.pw-2").returncode == 0
            d.wait(lambda s: s["acme"]["delivered"] == 6 and
                   s["acme"]["state"] == "idle" and
                   s["bad.pw-2"]["state"] == "backoff",
                   "6 delivered, one account refused")
            status, headers, body = _get(port)
            assert status == 200, (status, body)
            assert headers["Content-Type"].startswith(
                "text/plain; version=0.0.4"), headers
            assert int(headers["Content-Length"]) == len(body)
            text = body.decode()
            fams = parse_prometheus(text)
            # the same families as haulctl metrics
            r = d.ctl("metrics")
            assert r.returncode == 0, r.stderr
            assert set(parse_prometheus(r.stdout)) == set(fams)
            assert value(fams, "haul_messages_delivered_total",
                         "acme") == 6
            assert value(fams, "haul_bytes_delivered_total", "acme") >= \
                sum(len(m) for m in msgs)
            assert fams["haul_delivery_latency_seconds"]["type"] == \
                "histogram"
            assert value(fams, "haul_delivery_latency_seconds", "acme",
                         "haul_delivery_latency_seconds_count") == 6
            assert value(fams, "haul_delivery_latency_seconds", "acme",
                         "haul_delivery_latency_seconds_bucket",
                         le="+Inf") == 6
            assert value(fams, "haul_session_duration_seconds", "acme",
                         "haul_session_duration_seconds_count") == 1
            weird = "bad.pw-2"
            assert value(fams, "haul_session_errors_total", weird,
                         **{"class": "auth"}) == 1
            assert value(fams, "haul_session_errors_total", "acme",
                         **{"class": "auth"}) == 0
            assert value(fams, "haul_auth_failing", weird) == 1
            assert value(fams, "haul_auth_failing", "acme") == 0
            assert value(fams, "haul_backoff", weird) == 1
            assert value(fams, "haul_messages_delivered_total", weird) == 0

            # HEAD: the headers only
            status, headers, body = _get(port, "HEAD")
            assert status == 200 and body == b"", (status, body)
            assert int(headers["Content-Length"]) > 0
            # other paths, methods, versions, garbage
            assert _get(port, path="/")[0] == 404
            assert _get(port, path="/metrics/x")[0] == 404
            status, headers, _ = _get(port, "POST")
            assert status == 405 and headers.get("Allow") == "GET, HEAD"
            assert _raw(port, b"GET /metrics HTTP/2.0\r\n\r\n").startswith(
                b"HTTP/1.1 505 ")
            assert _raw(port, b"\x16\x03\x01\x00\xa5\x01\r\n\r\n"
                        ).startswith(b"HTTP/1.1 400 ")
            # a head over 8 KiB: 400, whatever comes after
            big = b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n"
            assert _raw(port, big).startswith(b"HTTP/1.1 400 ")
            # one request per connection: the second is never read
            two = b"GET /metrics HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n"
            out = _raw(port, two)
            assert out.startswith(b"HTTP/1.1 200 ") and \
                out.count(b"HTTP/1.1 ") == 1
            # a client that says nothing is dropped after 5 s
            t0 = time.monotonic()
            assert _raw(port, b"", t=15) == b""
            assert 4 <= time.monotonic() - t0 < 10
            # at most 16 clients at once: the others are closed at once
            held = [socket.create_connection(("127.0.0.1", port),
                                             timeout=5) for _ in range(20)]
            try:
                time.sleep(0.5)
                ready, _, _ = select.select(held, [], [], 1)
                closed = [s for s in ready if s.recv(1) == b""]
                assert 4 <= len(closed) <= 6, len(closed)
            finally:
                for s in held:
                    s.close()
            # and the endpoint still serves
            time.sleep(0.2)
            assert _get(port)[0] == 200
            assert d.stop() == 0, d.tail()
        # the listener is gone with hauld
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
            raise AssertionError("metrics port still open")
        except ConnectionRefusedError:
            pass


def test_metrics_listen_is_loopback_only(env):
    h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "h"))
    h.smtp(25)
    h.account("acme", password="p-Mx71", host="localhost", user="u",
              deliver_to=["alice@local.test"])
    for bad in ("0.0.0.0:9167", "192.0.2.1:9167", "[::]:9167",
                "127.0.0.1:0", "127.0.0.1"):
        h.global_opts["metrics_listen"] = bad
        rc, out = h.check_config()
        assert rc == 1 and "metrics_listen" in out, (bad, out)
    h.global_opts["metrics_listen"] = "[::1]:9167"
    rc, out = h.check_config()
    assert rc == 0, out


def test_push_latency_and_idle_gauge(env):
    """IMAP IDLE: a message the server announces while hauld idles shows
    in the push-latency histogram, and the account counts as idling."""
    from fakeimap import FakeIMAP
    from fakeimap import sample_message as imap_message
    from imaprun import imap_account
    port = free_port()
    srv = FakeIMAP({"INBOX": []}, users={"u": "p-Mx71"}, tls="implicit",
                   certfile=env.pki.cert, keyfile=env.pki.key)
    try:
        with SmtpSink(os.path.join(env.tmpdir, "sink")) as sink:
            h = Hauld(env.need("hauld"), os.path.join(env.tmpdir, "h"))
            h.global_opts["control_socket"] = os.path.join(h.dir, "ctl.sock")
            h.global_opts["metrics_listen"] = "127.0.0.1:%d" % port
            h.smtp(sink.port)
            imap_account(h, "push", "p-Mx71", host="localhost",
                         port=srv.port, tls="implicit",
                         ca_file=env.pki.ca_cert, user="u", keep=True,
                         idle=True, poll_interval=3600,
                         deliver_to=["alice@local.test"])
            with Daemon(h, debug=False) as d:
                assert d.ctl("fetch", "push").returncode == 0
                assert srv.wait_idling(1, "INBOX", 10), d.tail()
                fams = parse_prometheus(_get(port)[2].decode())
                assert value(fams, "haul_idle_connected", "push") == 1
                assert value(fams, "haul_push_latency_seconds", "push",
                             "haul_push_latency_seconds_count") == 0
                srv.add_message("INBOX", imap_message(1, 500))
                d.wait(lambda s: s["push"]["delivered"] == 1, "pushed")
                fams = parse_prometheus(_get(port)[2].decode())
                assert value(fams, "haul_push_latency_seconds", "push",
                             "haul_push_latency_seconds_count") == 1
                # pushed, fetched and accepted on loopback: well under 5 s
                assert value(fams, "haul_push_latency_seconds", "push",
                             "haul_push_latency_seconds_bucket",
                             le="5") == 1
                assert d.stop() == 0, d.tail()
    finally:
        srv.stop()
