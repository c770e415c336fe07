#!/usr/bin/env python3
"""dotserver.py - a small scriptable DNS-over-TLS server for dotgw's fault tests.

It listens on ADDR:PORT with TLS 1.2 or later (session tickets on, so clients can resume),
reads RFC 7858 frames (2-octet length, then a DNS message) and answers every query with one
A record (203.0.113.99, TTL 60) for qtype A or ANY, and with an empty NOERROR answer for any
other qtype. The answer echoes the id and the question; when the query carried an OPT RR the
answer carries one too, with an edns-tcp-keepalive option (RFC 7828) of --keepalive units of
100 ms.

Misbehaviour, chosen by options (each applies to every connection):
  --reverse N          collect N queries, answer them in reverse order (a partial batch is
                       answered, reversed, after 0.1 s without a new query)
  --stall-after N      answer the first N queries of a connection, then none; keep it open
  --stall-connections  accept TLS, then never answer anything (--stall-after 0)
  --idle-close S       close a connection idle for S seconds (by default cleanly: TLS
                       close_notify, then FIN)
  --close-after N      read N queries of a connection, answer all but the last, then close
                       the connection (by default abruptly: RST, no close_notify)
  --close-style STYLE  how those two close: tls (close_notify, FIN), fin (FIN without
                       close_notify, as many servers do), rst (RST)
  --wrong-answer       answer with a different question (wrong.invalid.)

Counters go to --stats FILE as one JSON object, rewritten (atomically) after every change and
on SIGUSR1; the file first appears once the server listens, which makes it a readiness signal:
  connections  TLS connections accepted (handshake done)
  resumed      ...of them that resumed a TLS session
  queries      queries received
  answers      answers sent
  reordered    answers sent before an earlier query of the same connection (--reverse)
  idle_closed  connections closed by --idle-close
  cut          connections closed by --close-after
SIGTERM or SIGINT writes the counters and exits 0.

Python 3 standard library only (asyncio, ssl).
"""

import argparse
import asyncio
import json
import os
import signal
import socket
import ssl
import struct
import sys

TYPE_A = 1
TYPE_OPT = 41
TYPE_ANY = 255
OPT_KEEPALIVE = 11
ANSWER_ADDR = bytes([203, 0, 113, 99])
ANSWER_TTL = 60


class Stats:
    """The counters, written to a JSON file soon after each change (once per loop turn)."""

    FIELDS = ("connections", "resumed", "queries", "answers", "reordered", "idle_closed",
              "cut")

    def __init__(self, path):
        self.path = path
        self.values = dict.fromkeys(self.FIELDS, 0)
        self.pending = False

    def add(self, field, n=1):
        self.values[field] += n
        if self.path and not self.pending:
            self.pending = True
            asyncio.get_running_loop().call_soon(self.write)

    def write(self):
        self.pending = False
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="ascii") as f:
            json.dump(self.values, f)
            f.write("\n")
        os.replace(tmp, self.path)


def skip_name(msg, off):
    """Return the offset just after the (uncompressed or compressed) name at off."""
    while True:
        n = msg[off]
        if n == 0:
            return off + 1
        if n & 0xC0 == 0xC0:
            return off + 2
        off += 1 + n


def parse_query(msg):
    """Return (id, flags, question bytes, qtype, has_opt) or None for a message to ignore."""
    try:
        qid, flags, qd, an, ns, ar = struct.unpack("!6H", msg[:12])
        if flags & 0x8000 or qd != 1:
            return None
        end = skip_name(msg, 12)
        qtype = struct.unpack("!H", msg[end:end + 2])[0]
        question = msg[12:end + 4]
        off = end + 4
        has_opt = False
        for _ in range(an + ns + ar):
            off = skip_name(msg, off)
            rtype, _, _, rdlen = struct.unpack("!HHIH", msg[off:off + 10])
            has_opt = has_opt or rtype == TYPE_OPT
            off += 10 + rdlen
        return qid, flags, question, qtype, has_opt
    except (IndexError, struct.error):
        return None


def build_answer(opts, query):
    """The framed answer to a parsed query."""
    qid, qflags, question, qtype, has_opt = query
    if opts.wrong_answer:
        question = b"\x05wrong\x07invalid\x00" + question[-4:]
    answers = b""
    if qtype in (TYPE_A, TYPE_ANY):
        # the name is a pointer to the question (offset 12)
        answers = struct.pack("!HHHIH", 0xC00C, TYPE_A, 1, ANSWER_TTL, 4) + ANSWER_ADDR
    additional = b""
    if has_opt:
        option = struct.pack("!HHH", OPT_KEEPALIVE, 2, opts.keepalive)
        additional = b"\x00" + struct.pack("!HHIH", TYPE_OPT, 1232, 0, len(option)) + option
    flags = 0x8000 | 0x0400 | (qflags & 0x0100) | 0x0080  # QR AA, RD copied, RA
    header = struct.pack("!6H", qid, flags, 1, 1 if answers else 0, 0, 1 if has_opt else 0)
    msg = header + question + answers + additional
    return struct.pack("!H", len(msg)) + msg


class Connection:
    """One client connection: read frames, answer them as the options say."""

    def __init__(self, opts, stats, reader, writer):
        self.opts = opts
        self.stats = stats
        self.reader = reader
        self.writer = writer
        self.received = 0
        self.batch = []
        self.flush_handle = None

    def send(self, query):
        self.writer.write(build_answer(self.opts, query))
        self.stats.add("answers")

    def flush_batch(self):
        if self.flush_handle:
            self.flush_handle.cancel()
            self.flush_handle = None
        batch, self.batch = self.batch, []
        for query in reversed(batch):
            self.send(query)
        self.stats.add("reordered", max(len(batch) - 1, 0))

    async def close(self, style):
        """Close the connection: tls (close_notify, FIN), fin (FIN only) or rst (RST)."""
        if self.flush_handle:
            self.flush_handle.cancel()
        sock = self.writer.get_extra_info("socket")
        if style == "rst":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.writer.transport.abort()
        elif style == "fin":
            sock.shutdown(socket.SHUT_WR)
            # the client closes its side at the FIN; drop whatever else it sends
            asyncio.get_running_loop().call_later(1, self.writer.transport.abort)
        else:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except (ConnectionError, ssl.SSLError):
                pass

    async def read_frame(self):
        """The next message; None when the client closed; TimeoutError after --idle-close."""
        idle = self.opts.idle_close if not self.batch else None
        try:
            head = await asyncio.wait_for(self.reader.readexactly(2), idle)
            return await self.reader.readexactly(struct.unpack("!H", head)[0])
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            return None

    async def run(self):
        opts = self.opts
        while True:
            try:
                msg = await self.read_frame()
            except asyncio.TimeoutError:
                self.stats.add("idle_closed")
                await self.close(opts.close_style or "tls")
                return
            if msg is None:
                break
            self.received += 1
            self.stats.add("queries")
            if opts.close_after and self.received >= opts.close_after:
                self.stats.add("cut")
                await self.close(opts.close_style or "rst")
                return
            query = parse_query(msg)
            if query is None:
                continue
            if opts.stall_after is not None and self.received > opts.stall_after:
                continue
            if opts.reverse:
                self.batch.append(query)
                if len(self.batch) >= opts.reverse:
                    self.flush_batch()
                elif self.flush_handle is None:
                    self.flush_handle = asyncio.get_running_loop().call_later(
                        0.1, self.flush_batch)
            else:
                self.send(query)
            try:
                await self.writer.drain()
            except (ConnectionError, ssl.SSLError):
                break
        await self.close("tls")


async def serve(opts):
    stats = Stats(opts.stats)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(opts.cert, opts.key)
    ctx.options &= ~ssl.OP_NO_TICKET  # session tickets on (the default, made explicit)

    async def accept(reader, writer):
        stats.add("connections")
        if writer.get_extra_info("ssl_object").session_reused:
            stats.add("resumed")
        await Connection(opts, stats, reader, writer).run()

    server = await asyncio.start_server(accept, opts.listen, opts.port, ssl=ctx,
                                        reuse_address=True)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    loop.add_signal_handler(signal.SIGUSR1, stats.write)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: done.done() or done.set_result(None))
    stats.write()
    print(f"dotserver: listening on {opts.listen}@{opts.port}", flush=True)
    await done
    server.close()
    stats.write()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", required=True, help="address to listen on")
    p.add_argument("--port", type=int, default=853)
    p.add_argument("--cert", required=True, help="certificate chain (PEM)")
    p.add_argument("--key", required=True, help="private key (PEM)")
    p.add_argument("--stats", help="JSON file for the counters")
    p.add_argument("--keepalive", type=int, default=300,
                   help="edns-tcp-keepalive timeout in units of 100 ms (default 300)")
    p.add_argument("--reverse", type=int, metavar="N")
    p.add_argument("--stall-after", type=int, metavar="N")
    p.add_argument("--stall-connections", action="store_true")
    p.add_argument("--idle-close", type=float, metavar="SECONDS")
    p.add_argument("--close-after", type=int, metavar="N")
    p.add_argument("--close-style", choices=("tls", "fin", "rst"))
    p.add_argument("--wrong-answer", action="store_true")
    opts = p.parse_args()
    if opts.stall_connections:
        opts.stall_after = 0
    asyncio.run(serve(opts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
