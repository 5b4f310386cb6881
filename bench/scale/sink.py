#!/usr/bin/env python3
# ISC License; see LICENSE.
"""sink: a fast SMTP sink for bench/scale/run.py.  Accepts every message
(ESMTP with PIPELINING, no CHUNKING) and writes one line per message to
--out:  ARRIVAL_UNIX_TIME MESSAGE_ID  (arrival = the final "." seen).
Python 3 stdlib only; asyncio, one process.

    python3 bench/scale/sink.py --host 127.0.0.1 --port P --out FILE
"""

import argparse
import asyncio
import re
import signal
import sys
import time

MID_RE = re.compile(rb"^message-id:[ \t]*<?([^>\r\n]*)>?", re.I | re.M)
MAX_LINE = 4096
MAX_MSG = 10 * 1024 * 1024


class Sink:
    def __init__(self, out):
        self.out = out
        self.count = 0

    def record(self, t, data):
        head = data.split(b"\r\n\r\n", 1)[0]
        m = MID_RE.search(head)
        mid = m.group(1).decode("latin-1") if m else "-"
        self.out.write("%.6f %s\n" % (t, mid))
        self.out.flush()
        self.count += 1

    async def session(self, reader, writer):
        w = writer.write
        w(b"220 sink ESMTP\r\n")
        try:
            while True:
                line = await reader.readuntil(b"\n")
                if len(line) > MAX_LINE:
                    w(b"500 line too long\r\n")
                    break
                verb = line[:4].upper()
                if verb in (b"EHLO", b"LHLO"):
                    w(b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"
                      b"250-ENHANCEDSTATUSCODES\r\n250 SIZE 104857600\r\n")
                elif verb == b"HELO":
                    w(b"250 sink\r\n")
                elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP", b"XCLI"):
                    w(b"250 2.0.0 ok\r\n")
                elif verb == b"DATA":
                    w(b"354 go ahead\r\n")
                    await writer.drain()
                    chunks = []
                    size = 0
                    while True:
                        ln = await reader.readuntil(b"\n")
                        if ln in (b".\r\n", b".\n"):
                            break
                        size += len(ln)
                        if size <= MAX_MSG:
                            chunks.append(ln)
                    self.record(time.time(), b"".join(chunks))
                    w(b"250 2.0.0 queued\r\n")
                elif verb == b"QUIT":
                    w(b"221 bye\r\n")
                    await writer.drain()
                    break
                else:
                    w(b"502 5.5.2 not implemented\r\n")
                # Pipelined commands: answer them as a group.
                if not reader._buffer:
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError,
                asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()


async def main_async(args):
    with open(args.out, "a") as out:
        sink = Sink(out)
        srv = await asyncio.start_server(sink.session, args.host, args.port,
                                         limit=MAX_LINE * 4, backlog=1024)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        async with srv:
            await stop.wait()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    asyncio.run(main_async(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
