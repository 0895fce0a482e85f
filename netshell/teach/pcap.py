"""A capture saved as pcapng: the bytes a trace saw, in packets Wireshark and tshark read.

A trace sees what protocols write and read, not packets. :func:`write_pcapng` makes the
packets up around those bytes, as a TCP/IP stack would have sent them:

- one Section Header Block (byte order magic, version 1.0, section length unknown) whose
  comment says the file was synthesized by netshell from a trace, and how; one Interface
  Description Block (link type 1, Ethernet; timestamps in microseconds, ``if_tsresol``
  6, the default); one Enhanced Packet Block per packet, its data padded to 32 bits,
  with the captured and the original length, and a comment where there is something to
  say (the first packet of each connection says which one it is);
- Ethernet frames between made-up, locally administered MAC addresses (one per IP
  address); IPv4 (header checksum computed) or IPv6, as the addresses are; a connection
  between a Unix socket's ends is shown as TCP between 127.0.0.1 ports (the comment of its
  first packet says which path, and which ports);
- TCP (RFC 9293): a SYN, SYN-ACK, ACK handshake at the time the connection was made (or
  was first seen), data in segments of at most 1460 bytes (the MSS both SYNs announce),
  sequence and acknowledgement numbers that advance by the bytes sent, a pure ACK from the
  receiver after each write (and every 16 segments of a long one, so no more than a
  window of 65,535 bytes is ever unacknowledged), and a close as the trace saw it: FIN from
  the end that closed, FIN back, ACK; RST for a connection aborted (from the end that
  aborted) or reset (from its peer); checksums computed;
- UDP datagrams as UDP.

Payload bytes the capture did not keep (it keeps 16 MiB in all, then the first bytes of
each write), or never saw (a file sent with sendfile(2)), make packets shorter than they
were: captured length < original length, and a comment on the packet says why. TLS
connections carry the plaintext the protocol saw, marked so in their first packet's
comment and the file's.

Example::

    >>> import io
    >>> from netshell.shell.tracing import CaptureEvent
    >>> events = [CaptureEvent(1.0, "data", None, "127.0.0.1:5000", "127.0.0.1:53",
    ...                        b"hi", 2, "", "out")]
    >>> out = io.BytesIO()
    >>> write_pcapng(events, out)
    PcapStats(packets=1, connections=0, datagrams=1, truncated=0)
    >>> out.getvalue()[:4] == b"\\n\\r\\r\\n"
    True
"""

from __future__ import annotations

import hashlib
import ipaddress
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, NamedTuple

import netshell
from netshell.shell.tracing import UNSEEN_IN, UNSEEN_OUT
from netshell.teach.wire import Flow, Text, assemble

__all__ = [
    "MSS",
    "PcapStats",
    "checksum",
    "enhanced_packet",
    "interface_description",
    "save_capture",
    "section_header",
    "write_pcapng",
]

SHB = 0x0A0D0D0A
IDB = 0x00000001
EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_NAME = 2
IF_DESCRIPTION = 3
IF_TSRESOL = 9
LINKTYPE_ETHERNET = 1

#: The payload of a TCP segment at most (what the SYNs announce as their MSS).
MSS = 1460
#: A pure ACK goes back at least every so many segments of one write.
ACK_EVERY = 16
WINDOW = 65535

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_IPV6 = 0x86DD
PROTO_TCP = 6
PROTO_UDP = 17


# ---- blocks (draft-ietf-opsawg-pcapng)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def option(code: int, value: bytes) -> bytes:
    """One option: code, length (of the value, without padding), value padded to 32 bits."""
    return struct.pack("<HH", code, len(value)) + _pad(value)


def options(items: Sequence[tuple[int, bytes]]) -> bytes:
    """A list of options ended by ``opt_endofopt``; nothing at all when there are none."""
    if not items:
        return b""
    return b"".join(option(code, value) for code, value in items) + struct.pack(
        "<HH", OPT_ENDOFOPT, 0)


def block(block_type: int, body: bytes) -> bytes:
    """A block: type, total length, the body padded to 32 bits, the total length again."""
    body = _pad(body)
    total = len(body) + 12
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def section_header(comment: str = "", application: str = "") -> bytes:
    """The Section Header Block: little-endian, version 1.0, section length unknown (-1)."""
    items = []
    if comment:
        items.append((OPT_COMMENT, comment.encode()))
    if application:
        items.append((SHB_USERAPPL, application.encode()))
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1) + options(items)
    return block(SHB, body)


def interface_description(name: str = "", description: str = "") -> bytes:
    """An Interface Description Block: Ethernet, no snap length, microsecond timestamps."""
    items = []
    if name:
        items.append((IF_NAME, name.encode()))
    if description:
        items.append((IF_DESCRIPTION, description.encode()))
    items.append((IF_TSRESOL, bytes([6])))
    body = struct.pack("<HHI", LINKTYPE_ETHERNET, 0, 0) + options(items)
    return block(IDB, body)


def enhanced_packet(microseconds: int, packet: bytes, original_length: int,
                    comment: str = "", interface: int = 0) -> bytes:
    """An Enhanced Packet Block: ``packet`` (the bytes captured) of a packet that had
    ``original_length`` bytes, at ``microseconds`` since the epoch."""
    body = struct.pack("<IIIII", interface, (microseconds >> 32) & 0xFFFFFFFF,
                       microseconds & 0xFFFFFFFF, len(packet), original_length)
    body += _pad(packet) + options([(OPT_COMMENT, comment.encode())] if comment else [])
    return block(EPB, body)


# ---- packets


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): the ones' complement of the ones' complement sum
    of the 16-bit words (an odd byte padded with a zero)."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def mac_of(ip: IP) -> bytes:
    """A made-up MAC address for ``ip``: locally administered (02:...), the same each time."""
    return b"\x02\x00" + hashlib.sha1(ip.packed).digest()[:4]


def _pseudo_header(src: IP, dst: IP, proto: int, length: int) -> bytes:
    if src.version == 4:
        return src.packed + dst.packed + struct.pack("!BBH", 0, proto, length)
    return src.packed + dst.packed + struct.pack("!IxxxB", length, proto)


def transport_checksum(src: IP, dst: IP, proto: int, segment: bytes) -> int:
    value = checksum(_pseudo_header(src, dst, proto, len(segment)) + segment)
    return value if proto != PROTO_UDP or value else 0xFFFF  # UDP: 0 means "none"


def tcp_segment(src: IP, dst: IP, sport: int, dport: int, seq: int, ack: int, flags: int,
                payload: bytes, mss: bool = False) -> bytes:
    """A TCP header and ``payload``, checksum computed (``mss``: with the MSS option)."""
    opts = struct.pack("!BBH", 2, 4, MSS) if mss else b""
    offset = (20 + len(opts)) // 4
    header = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                         offset << 4, flags, WINDOW, 0, 0) + opts
    segment = header + payload
    value = transport_checksum(src, dst, PROTO_TCP, segment)
    return segment[:16] + struct.pack("!H", value) + segment[18:]


def udp_datagram(src: IP, dst: IP, sport: int, dport: int, payload: bytes) -> bytes:
    """A UDP header and ``payload``, checksum computed."""
    header = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    value = transport_checksum(src, dst, PROTO_UDP, header + payload)
    return header[:6] + struct.pack("!H", value) + payload


def ip_packet(src: IP, dst: IP, proto: int, segment: bytes, ident: int = 0) -> bytes:
    """An IPv4 header (checksum computed; don't fragment) or an IPv6 header, then
    ``segment``."""
    if src.version == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), ident & 0xFFFF,
                             0x4000, 64, proto, 0, src.packed, dst.packed)
        header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
        return header + segment
    return struct.pack("!IHBB16s16s", 6 << 28, len(segment), proto, 64, src.packed,
                       dst.packed) + segment


def ethernet_frame(src: IP, dst: IP, packet: bytes) -> bytes:
    ethertype = ETHERTYPE_IPV4 if src.version == 4 else ETHERTYPE_IPV6
    return mac_of(dst) + mac_of(src) + struct.pack("!H", ethertype) + packet


# ---- addresses


class Endpoint(NamedTuple):
    ip: IP
    port: int


class _Addresses:
    """The IP address and port of each address of a capture. Unix sockets (and anything
    that is not an IP address) become 127.0.0.1 ports: a named end (a listener's path)
    from 20000 up, an unnamed one from 40000 up, one per connection."""

    def __init__(self) -> None:
        self.named: dict[str, int] = {}
        self.unnamed = 40000

    def of(self, text: str, flow: Flow) -> tuple[Endpoint, str]:
        """The endpoint of ``text`` in ``flow``, and a note if it was mapped."""
        head, sep, tail = text.rpartition(":")
        if sep and tail.isdigit() and not text.startswith("unix:"):
            try:
                return Endpoint(ipaddress.ip_address(head.strip("[]")), int(tail)), ""
            except ValueError:
                pass
        loopback = ipaddress.IPv4Address("127.0.0.1")
        if text in ("unix:(unnamed)", "?", "unix:") or not text:
            self.unnamed = self.unnamed + 1 if self.unnamed < 65535 else 40001
            port = self.unnamed
        else:
            port = self.named.setdefault(text, 20000 + len(self.named) % 20000)
        return Endpoint(loopback, port), f"{text} shown as 127.0.0.1:{port}"


def _same_family(a: Endpoint, b: Endpoint) -> tuple[Endpoint, Endpoint]:
    if a.ip.version == b.ip.version:
        return a, b

    def six(e: Endpoint) -> Endpoint:
        if e.ip.version == 6:
            return e
        return Endpoint(ipaddress.IPv6Address(f"::ffff:{e.ip}"), e.port)

    return six(a), six(b)


# ---- the writer


class PcapStats(NamedTuple):
    """What :func:`write_pcapng` wrote."""

    packets: int
    connections: int  #: TCP connections (Unix ones included)
    datagrams: int  #: UDP datagrams
    truncated: int  #: packets with fewer bytes captured than they had


@dataclass(eq=False)
class _Stream:
    """One TCP connection's state as it is written: each end's next sequence number and
    the last acknowledgement it sent."""

    flow: Flow
    client: Endpoint
    server: Endpoint
    comment: str
    seq: dict[bool, int] = field(default_factory=dict)  # from the client? -> next seq
    acked: dict[bool, int] = field(default_factory=dict)  # from the client? -> last ack
    started: bool = False
    ended: bool = False


class _Writer:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.packets = 0
        self.truncated = 0
        self.ident = 0

    def packet(self, when: float, src: Endpoint, dst: Endpoint, proto: int, segment: bytes,
               missing: int = 0, comment: str = "") -> None:
        """Write one frame; ``missing`` bytes at the end of ``segment`` were not captured."""
        self.ident += 1
        frame = ethernet_frame(src.ip, dst.ip, ip_packet(src.ip, dst.ip, proto, segment,
                                                         self.ident))
        if missing:
            self.truncated += 1
            # the IP length fields say what the packet had: the headers and every byte
            if src.ip.version == 4:
                total = struct.pack("!H", len(frame) - 14 + missing)
                frame = frame[:16] + total + frame[18:]
                header = frame[14:34]
                value = checksum(header[:10] + b"\0\0" + header[12:])
                frame = frame[:24] + struct.pack("!H", value) + frame[26:]
            else:
                length = struct.pack("!H", len(frame) - 54 + missing)
                frame = frame[:18] + length + frame[20:]
            if proto == PROTO_UDP:
                length = struct.pack("!H", len(segment) + missing)
                start = 34 if src.ip.version == 4 else 54
                frame = frame[: start + 4] + length + frame[start + 6:]
        microseconds = round(when * 1_000_000)
        self.out.write(enhanced_packet(microseconds, frame, len(frame) + missing, comment))
        self.packets += 1

    def tcp(self, when: float, s: _Stream, from_client: bool, flags: int,
            payload: bytes = b"", missing: int = 0, comment: str = "") -> None:
        src, dst = (s.client, s.server) if from_client else (s.server, s.client)
        src, dst = _same_family(src, dst)
        seq = s.seq[from_client]
        ack = s.seq[not from_client] if flags & ACK else 0
        segment = tcp_segment(src.ip, dst.ip, src.port, dst.port, seq, ack, flags, payload,
                              mss=bool(flags & SYN))
        self.packet(when, src, dst, PROTO_TCP, segment, missing, comment)
        s.seq[from_client] = seq + len(payload) + missing + (1 if flags & (SYN | FIN) else 0)
        if flags & ACK:
            s.acked[from_client] = ack

    def ack_if_due(self, when: float, s: _Stream, from_client: bool) -> None:
        """A pure ACK from this end if it has something new to acknowledge."""
        if s.acked.get(from_client) != s.seq[not from_client]:
            self.tcp(when, s, from_client, ACK)


def _isn(flow: Flow, client: bool) -> int:
    seed = f"{flow.index}:{flow.number}:{flow.client}:{flow.server}:{client}".encode()
    return int.from_bytes(hashlib.sha1(seed).digest()[:4], "big")


def write_pcapng(events: Sequence[Any], out: IO[bytes], what: str = "",
                 application: str = f"netshell {netshell.__version__}") -> PcapStats:
    """Write ``events`` (a capture's conversation: :class:`~netshell.shell.tracing.
    CaptureEvent` values) to ``out`` as a pcapng file; returns what was written."""
    flows = assemble(events)
    of_event = {i: flow for flow in flows for i in flow.events}
    tls = any(f.tls for f in flows)
    unix = any(f.client.startswith("unix:") or f.server.startswith("unix:") for f in flows)
    comment = (
        f"Synthesized by netshell from a trace{' of ' + what if what else ''}: the payloads "
        "are the bytes the traced protocols wrote and read; the Ethernet, IP and TCP/UDP "
        "headers, handshakes, acknowledgements and closes around them are made up to "
        f"match (MSS {MSS}), not captured. Packets shorter than they were hold bytes the "
        "capture did not keep or never saw (their comments say which)."
    )
    if tls:
        comment += (" TLS connections are shown as the plaintext the protocol saw (on the "
                    "wire it was encrypted); their first packets say so.")
    if unix:
        comment += " Unix socket connections are shown as TCP between 127.0.0.1 ports."
    out.write(section_header(comment, application))
    out.write(interface_description("netshell-trace", "the bytes of a netshell trace"))
    writer = _Writer(out)
    addresses = _Addresses()
    streams: dict[int, _Stream] = {}
    between: dict[frozenset[Endpoint], _Stream] = {}  # the ends -> the stream open there
    datagrams = 0
    for i, e in enumerate(events):
        flow = of_event[i]
        if flow.datagram:
            if e.kind == "data":
                src, note_src = addresses.of(e.source, flow)
                dst, note_dst = addresses.of(e.dest, flow)
                src, dst = _same_family(src, dst)
                note = "; ".join(n for n in (note_src, note_dst) if n)
                kept = bytes(e.data)
                missing = e.size - len(kept)
                segment = udp_datagram(src.ip, dst.ip, src.port, dst.port, kept)
                if missing:
                    note = "; ".join(filter(None, (note, _why(e, len(kept)))))
                writer.packet(e.time, src, dst, PROTO_UDP, segment, missing, note)
                datagrams += 1
            continue
        s = streams.get(flow.index)
        if s is None:
            s = streams[flow.index] = _stream(flow, addresses)
        if s.ended:
            continue
        if not s.started:
            ends = frozenset(_same_family(s.client, s.server))
            old = between.get(ends)
            if old is not None and not old.ended:
                # the same ends again while the last connection between them was not
                # seen to end (its close not kept): it ends now, so the two do not mix
                closes = [events[j] for j in old.flow.events if events[j].kind == "close"]
                _close(writer, old, e.time, closes[0] if closes else None)
            between[ends] = s
            _handshake(writer, s, e.time)
        if e.kind == "data":
            _data(writer, s, e)
        if i == flow.events[-1] and any(events[j].kind == "close" for j in flow.events):
            _close(writer, s, e.time, next(events[j] for j in flow.events
                                           if events[j].kind == "close"))
    return PcapStats(writer.packets, len(streams), datagrams, writer.truncated)


def _stream(flow: Flow, addresses: _Addresses) -> _Stream:
    client, note_c = addresses.of(flow.client, flow)
    server, note_s = addresses.of(flow.server, flow)
    conn = f"#{flow.number} " if flow.number is not None else ""
    words = [f"{conn}{flow.client} -> {flow.server}"]
    if flow.protocol:
        words.append(flow.protocol.rsplit(".", 1)[-1])
    if flow.note and flow.note != "connect":
        words.append(f"({flow.note}: the handshake is made up)")
    elif not flow.opened:
        words.append("(first seen with data: the handshake is made up)")
    if flow.tls:
        words.append("TLS: the payload is the plaintext the protocol saw; on the wire it "
                     "was encrypted")
    mapped = "; ".join(n for n in (note_c, note_s) if n)
    comment = " ".join(words) + (f"; Unix socket: {mapped}" if mapped else "")
    s = _Stream(flow, client, server, comment)
    s.seq = {True: _isn(flow, True), False: _isn(flow, False)}
    return s


def _handshake(writer: _Writer, s: _Stream, when: float) -> None:
    s.started = True
    writer.tcp(when, s, True, SYN, comment=s.comment)
    writer.tcp(when, s, False, SYN | ACK)
    writer.tcp(when, s, True, ACK)


def _why(e: Any, kept: int) -> str:
    if e.note in (UNSEEN_IN, UNSEEN_OUT) or (e.note and not e.data):
        return f"{e.size:,} B {e.note}"
    return (f"{kept:,} of {e.size:,} B of this write kept (the capture keeps 16 MiB in all, "
            "then the first bytes of each write)")


def _data(writer: _Writer, s: _Stream, e: Any) -> None:
    from_client = e.source == s.flow.client
    if not from_client and e.source != s.flow.server:
        from_client = e.dest == s.flow.server
    data = bytes(e.data)
    commented = False
    for segments, offset in enumerate(range(0, e.size, MSS), 1):
        length = min(MSS, e.size - offset)
        kept = data[offset: offset + length]
        missing = length - len(kept)
        note = ""
        if missing and not commented:
            note, commented = _why(e, len(data)), True
        last = offset + length >= e.size
        writer.tcp(e.time, s, from_client, ACK | (PSH if last else 0), kept, missing, note)
        if not last and segments % ACK_EVERY == 0:
            writer.ack_if_due(e.time, s, not from_client)
    if e.size:
        writer.ack_if_due(e.time, s, not from_client)


def _close(writer: _Writer, s: _Stream, when: float, first_close: Any) -> None:
    s.ended = True
    if first_close is None:
        writer.tcp(when, s, True, RST | ACK, comment=(
            "a new connection between the same ends: this one's end was not seen"))
        return
    closer = first_close.source == s.flow.client
    note = first_close.note
    if note == "aborted":
        writer.tcp(when, s, closer, RST | ACK, comment=f"#{first_close.number} aborted")
    elif note.startswith("lost"):
        writer.tcp(when, s, not closer, RST | ACK, comment=f"#{first_close.number} {note}")
    else:
        writer.tcp(when, s, closer, FIN | ACK)
        writer.tcp(when, s, not closer, FIN | ACK)
        writer.tcp(when, s, closer, ACK)


def save_capture(capture: Any, path: Any) -> Text:
    """``capture.save(path)``: write the capture's conversation to ``path`` as pcapng."""
    with open(path, "wb") as out:
        stats = write_pcapng(capture.conversation(), out, capture.what)
    parts = [f"{stats.packets:,} packets", f"{stats.connections} connections"]
    if stats.datagrams:
        parts.append(f"{stats.datagrams} datagrams")
    if stats.truncated:
        parts.append(f"{stats.truncated:,} of them shorter than they were")
    return Text(f"wrote {path}: " + ", ".join(parts) + " (tshark -r, or Wireshark, reads it)")
