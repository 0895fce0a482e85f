"""The pcapng writer, read back by a reader written here from the spec (not the writer's).

draft-ietf-opsawg-pcapng: every block is type, total length, body padded to 32 bits,
total length again; options are code, length, value padded, ended by opt_endofopt; an
Enhanced Packet Block has the interface, a 64-bit timestamp, the captured and original
lengths, the data padded. Inside: Ethernet, IPv4 (header checksum) or IPv6, TCP whose
sequence and acknowledgement numbers must follow RFC 9293 (a handshake first, each
segment's sequence number the previous one's plus its length, SYN and FIN counting one,
every ACK acknowledging all that the other side sent, never more than a window of bytes
unacknowledged, a FIN/FIN/ACK or a RST at the end), UDP. Hypothesis feeds it any sequence
of events a capture can hold.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from netshell.shell.tracing import UNSEEN_OUT, Capture, CaptureEvent
from netshell.teach import pcap
from netshell.teach.pcap import MSS, write_pcapng

# ---- a reader, from the spec


def blocks_of(data: bytes) -> list[tuple[int, bytes]]:
    """(type, body) of each block; checks both lengths, alignment, and that nothing is left."""
    out = []
    pos = 0
    while pos < len(data):
        block_type, total = struct.unpack_from("<II", data, pos)
        assert total % 4 == 0 and total >= 12, (pos, total)
        assert pos + total <= len(data), "a block runs past the end of the file"
        assert struct.unpack_from("<I", data, pos + total - 4)[0] == total
        out.append((block_type, data[pos + 8: pos + total - 4]))
        pos += total
    assert pos == len(data)
    return out


def options_of(data: bytes) -> list[tuple[int, bytes]]:
    """The options in ``data`` (what follows a block's fixed fields): padded values, and
    opt_endofopt last; none at all is an empty list."""
    out: list[tuple[int, bytes]] = []
    pos = 0
    if not data:
        return out
    while True:
        code, length = struct.unpack_from("<HH", data, pos)
        pos += 4
        if code == 0:
            assert length == 0
            assert pos == len(data), "bytes after opt_endofopt"
            return out
        padded = length + (-length % 4)
        value = data[pos: pos + length]
        assert len(value) == length
        assert data[pos + length: pos + padded] == b"\0" * (padded - length)
        out.append((code, value))
        pos += padded


@dataclass
class Packet:
    time_us: int
    data: bytes  # the bytes captured
    original: int
    comment: str


def read_pcapng(data: bytes) -> tuple[dict[int, bytes], dict[int, bytes], list[Packet]]:
    """The section header's options, the interface's options, and the packets."""
    blocks = blocks_of(data)
    assert blocks[0][0] == 0x0A0D0D0A
    shb = blocks[0][1]
    magic, major, minor, section = struct.unpack_from("<IHHq", shb)
    assert (magic, major, minor, section) == (0x1A2B3C4D, 1, 0, -1)
    shb_options = dict(options_of(shb[16:]))
    assert blocks[1][0] == 1
    linktype, reserved, _snaplen = struct.unpack_from("<HHI", blocks[1][1])
    assert (linktype, reserved) == (1, 0)
    idb_options = dict(options_of(blocks[1][1][8:]))
    packets = []
    for block_type, body in blocks[2:]:
        assert block_type == 6
        interface, high, low, captured, original = struct.unpack_from("<IIIII", body)
        assert interface == 0
        assert captured <= original
        padded = captured + (-captured % 4)
        assert body[20 + captured: 20 + padded] == b"\0" * (padded - captured)
        options = dict(options_of(body[20 + padded:]))
        packets.append(Packet((high << 32) | low, body[20: 20 + captured], original,
                              options.get(1, b"").decode()))
    return shb_options, idb_options, packets


def ones_complement_sum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = 0
    for (word,) in struct.iter_unpack("!H", data):
        total += word
        total = (total & 0xFFFF) + (total >> 16)
    return total


@dataclass
class Segment:
    src: tuple[Any, int]
    dst: tuple[Any, int]
    proto: int
    seq: int = 0
    ack: int = 0
    flags: int = 0
    length: int = 0  # payload bytes the packet had (captured or not)
    payload: bytes = b""  # those captured
    mss: int | None = None


def dissect(p: Packet) -> Segment:
    """Ethernet, then IPv4 or IPv6, then TCP or UDP; checks lengths and checksums."""
    frame = p.data
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    assert frame[0] & 0x02 and frame[6] & 0x02  # locally administered, made-up MACs
    truncated = p.original > len(frame)
    if ethertype == 0x0800:
        header = frame[14:34]
        assert header[0] == 0x45
        total = struct.unpack_from("!H", header, 2)[0]
        assert total == p.original - 14
        assert ones_complement_sum(header) == 0xFFFF, "IPv4 header checksum"
        proto = header[9]
        src_ip, dst_ip = ipaddress.ip_address(header[12:16]), ipaddress.ip_address(header[16:20])
        start = 34
        pseudo = header[12:20] + struct.pack("!BBH", 0, proto, total - 20)
    else:
        assert ethertype == 0x86DD
        header = frame[14:54]
        assert header[0] >> 4 == 6
        length = struct.unpack_from("!H", header, 4)[0]
        assert length == p.original - 54
        proto = header[6]
        src_ip, dst_ip = ipaddress.ip_address(header[8:24]), ipaddress.ip_address(header[24:40])
        start = 54
        pseudo = header[8:40] + struct.pack("!IxxxB", length, proto)
    rest = frame[start:]
    wire_length = p.original - start
    if proto == 17:
        sport, dport, length, _ = struct.unpack_from("!HHHH", rest)
        assert length == wire_length
        if not truncated:
            assert ones_complement_sum(pseudo + rest) == 0xFFFF, "UDP checksum"
        return Segment((src_ip, sport), (dst_ip, dport), 17, length=length - 8,
                       payload=rest[8:])
    assert proto == 6
    sport, dport, seq, ack, offset, flags, window = struct.unpack_from("!HHIIBBH", rest)
    assert window == 65535
    header_length = (offset >> 4) * 4
    mss = None
    if header_length > 20:
        kind, size, mss = struct.unpack_from("!BBH", rest, 20)
        assert (kind, size) == (2, 4)
    if not truncated:
        assert ones_complement_sum(pseudo + rest) == 0xFFFF, "TCP checksum"
    return Segment((src_ip, sport), (dst_ip, dport), 6, seq, ack, flags,
                   wire_length - header_length, rest[header_length:], mss)


FIN, SYN, RST, ACK = 0x01, 0x02, 0x04, 0x10


@dataclass
class Connection:
    client: tuple[Any, int]
    next: dict[Any, int] = field(default_factory=dict)  # end -> its next sequence number
    acked: dict[Any, int] = field(default_factory=dict)  # end -> highest ack it got
    stage: str = "syn"  # syn, syn-ack, ack, open, closing, closed
    fins: int = 0
    payload: dict[Any, bytes] = field(default_factory=dict)  # end -> what it sent (kept)


def check_tcp(packets: list[Packet]) -> dict[frozenset[Any], list[Connection]]:
    """Follow every TCP connection as RFC 9293 does; returns each connection, by its pair
    of ends, in order (a pair used again after a close is a new connection)."""
    conns: dict[frozenset[Any], list[Connection]] = {}
    for p in packets:
        s = dissect(p)
        if s.proto != 6:
            continue
        key = frozenset((s.src, s.dst))
        history = conns.setdefault(key, [])
        c = history[-1] if history and history[-1].stage != "closed" else None
        if c is None:
            assert s.flags == SYN, f"a connection starts with a SYN, not {s.flags:#x}"
            assert s.mss == MSS
            c = Connection(s.src)
            history.append(c)
            c.next[s.src] = s.seq + 1
            c.stage = "syn-ack"
            continue
        other = s.dst
        if c.stage == "syn-ack":
            assert s.flags == SYN | ACK and s.src != c.client and s.mss == MSS
            assert s.ack == c.next[c.client]
            c.next[s.src] = s.seq + 1
            c.acked[c.client] = s.ack
            c.stage = "ack"
            continue
        assert not s.flags & SYN
        assert s.seq == c.next[s.src], "each segment starts where the last one ended"
        if s.flags & ACK:
            assert s.ack == c.next[other], "an ACK acknowledges all the other end sent"
            c.acked[other] = s.ack
        if c.stage == "ack":
            assert s.flags == ACK and s.length == 0 and s.src == c.client
            c.stage = "open"
            continue
        c.next[s.src] = s.seq + s.length + (1 if s.flags & FIN else 0)
        c.payload[s.src] = c.payload.get(s.src, b"") + s.payload
        unacked = c.next[s.src] - c.acked[s.src]
        assert unacked <= 65535, "more than a window unacknowledged"
        if s.flags & RST:
            c.stage = "closed"
        elif s.flags & FIN:
            c.fins += 1
            assert c.fins <= 2
        elif c.fins == 2:
            assert s.length == 0
            c.stage = "closed"
        if s.length:
            assert c.fins == 0, "no data after a FIN"
    return conns


# ---- events, as a capture holds them

SERVERS = {4: ["127.0.0.1:8080", "10.0.0.2:21"], 6: ["[::1]:8080", "[fe80::1]:6667"],
           0: ["unix:/tmp/s.sock"]}
CLIENT_HOSTS = {4: "127.0.0.1", 6: "[::1]"}


@st.composite
def capture_events(draw: Any) -> list[CaptureEvent]:
    """Any sequence of opens, writes (whole, cut short, or unseen), closes and datagrams
    on a few connections, in time order: each connection with its own client port (Unix:
    unnamed), a number no longer used once its connection closed, and its first event not
    always an open (a trace that started late)."""
    events = []
    now = draw(st.floats(0, 2e9))
    conns: dict[int, tuple[str, str]] = {}
    closed: set[int] = set()
    for _ in range(draw(st.integers(0, 30))):
        now += draw(st.floats(0, 2))
        kind = draw(st.sampled_from(["open", "data", "data", "data", "close", "datagram"]))
        number = draw(st.integers(1, 6))
        if number in closed:
            continue
        if number not in conns:
            family = draw(st.sampled_from([4, 6, 0]))
            server = draw(st.sampled_from(SERVERS[family]))
            client = ("unix:(unnamed)" if family == 0
                      else f"{CLIENT_HOSTS[family]}:{50000 + number}")
            conns[number] = (client, server)
        client, server = conns[number]
        if kind == "open":
            events.append(CaptureEvent(now, "open", number, client, server, b"", 0, "connect",
                                       "connected", draw(st.booleans()), "x.Proto", None))
        elif kind == "data":
            out = draw(st.booleans())
            src, dst = (client, server) if out else (server, client)
            size = draw(st.sampled_from([0, 1, 5, MSS - 1, MSS, MSS + 1, 3 * MSS + 7,
                                         20 * MSS + 3]))
            keep = draw(st.sampled_from(["all", "some", "none"]))
            kept = size if keep == "all" else (size // 3 if keep == "some" else 0)
            note = UNSEEN_OUT if keep == "none" and size else ""
            data = bytes(i % 251 for i in range(kept))
            events.append(CaptureEvent(now, "data", number, src, dst, data, size, note,
                                       "out" if out else "in"))
        elif kind == "close":
            closed.add(number)
            note = draw(st.sampled_from(["closed", "aborted", "lost: ConnectionResetError()"]))
            events.append(CaptureEvent(now, "close", number, server, client, b"", 0, note, ""))
        else:
            family = draw(st.sampled_from([4, 6]))
            a, b = draw(st.permutations(SERVERS[family]))
            data = draw(st.binary(max_size=40))
            events.append(CaptureEvent(now, "data", None, a, b, data, len(data), "", "out"))
    return events


@settings(max_examples=150, deadline=None)
@given(capture_events())
def test_any_events_give_a_file_whose_blocks_packets_and_tcp_read_back(
    events: list[CaptureEvent],
) -> None:
    out = BytesIO()
    stats = write_pcapng(events, out, "a test")
    shb, idb, packets = read_pcapng(out.getvalue())
    assert b"Synthesized by netshell from a trace of a test" in shb[1]
    assert idb[9] == bytes([6])  # if_tsresol: microseconds
    assert stats.packets == len(packets)
    assert stats.truncated == sum(p.original > len(p.data) for p in packets)
    times = [p.time_us for p in packets]
    assert times == sorted(times)
    assert times == [p.time_us for p in packets]
    conns = check_tcp(packets)
    assert sum(len(h) for h in conns.values()) == stats.connections
    # every byte written, kept or not, is in the sequence space, and those kept are there
    datagrams = [dissect(p) for p in packets if dissect(p).proto == 17]
    assert len(datagrams) == stats.datagrams == sum(
        1 for e in events if e.number is None)
    assert [d.payload for d in datagrams] == [e.data for e in events if e.number is None]
    sent = sum(e.size for e in events if e.kind == "data" and e.number is not None)
    carried = sum(dissect(p).length for p in packets if dissect(p).proto == 6)
    assert carried == sent


ENDS = ["127.0.0.1:8080", "127.0.0.1:50000", "[::1]:8080", "[::1]:50001", "unix:/s",
        "unix:(unnamed)"]


@st.composite
def tangled_events(draw: Any) -> list[CaptureEvent]:
    """Events no single trace makes, but a capture's list can hold: numbers used again
    after their close, several numbers between the same two ends, bytes after a close."""
    events = []
    for t in range(draw(st.integers(0, 25))):
        kind = draw(st.sampled_from(["open", "data", "close"]))
        a, b = draw(st.permutations(ENDS))[:2]
        size = draw(st.sampled_from([0, 3, MSS + 1]))
        events.append(CaptureEvent(float(t), kind, draw(st.integers(1, 3)), a, b,
                                   b"z" * size if kind == "data" else b"",
                                   size if kind == "data" else 0,
                                   draw(st.sampled_from(["closed", "aborted", "lost: x"])),
                                   "out"))
    return events


@settings(max_examples=150, deadline=None)
@given(tangled_events())
def test_tangled_events_still_give_a_file_whose_tcp_reads_back(
    events: list[CaptureEvent],
) -> None:
    out = BytesIO()
    stats = write_pcapng(events, out)
    packets = read_pcapng(out.getvalue())[2]
    assert stats.packets == len(packets)
    check_tcp(packets)


def test_one_write_is_cut_into_segments_of_1460_and_acknowledged() -> None:
    events = [
        CaptureEvent(1.0, "open", 1, "127.0.0.1:50000", "127.0.0.1:80", b"", 0, "connect",
                     "connected"),
        CaptureEvent(2.0, "data", 1, "127.0.0.1:50000", "127.0.0.1:80", b"x" * 4000, 4000,
                     "", "out"),
        CaptureEvent(3.0, "close", 1, "127.0.0.1:50000", "127.0.0.1:80", b"", 0, "closed", ""),
    ]
    out = BytesIO()
    write_pcapng(events, out)
    segments = [dissect(p) for p in read_pcapng(out.getvalue())[2]]
    flags = [(s.flags, s.length) for s in segments]
    assert flags == [(SYN, 0), (SYN | ACK, 0), (ACK, 0),
                     (ACK, 1460), (ACK, 1460), (ACK | 0x08, 1080), (ACK, 0),
                     (FIN | ACK, 0), (FIN | ACK, 0), (ACK, 0)]
    assert segments[3].src[1] == 50000 and segments[6].src[1] == 80
    assert segments[3].seq + 4000 == segments[6].ack
    (conn,) = check_tcp(read_pcapng(out.getvalue())[2]).values()
    assert conn[0].payload[segments[3].src] == b"x" * 4000


def test_a_long_write_is_acknowledged_before_a_window_of_it_is_in_flight() -> None:
    size = 100_000
    events = [CaptureEvent(1.0, "data", 1, "127.0.0.1:80", "127.0.0.1:50000", b"", size,
                           UNSEEN_OUT, "out")]
    out = BytesIO()
    write_pcapng(events, out)
    packets = read_pcapng(out.getvalue())[2]
    check_tcp(packets)  # never more than 65,535 bytes unacknowledged
    acks = [s for s in map(dissect, packets) if s.src[1] == 50000 and s.flags == ACK]
    segments = -(-size // MSS)
    assert len(acks) == len(range(16, segments, 16)) + 1  # every 16 segments, and the last


def test_an_aborted_connection_ends_with_a_rst_from_the_end_that_aborted() -> None:
    events = [
        CaptureEvent(1.0, "open", 1, "127.0.0.1:50000", "127.0.0.1:80", b"", 0, "connect",
                     "accepted"),
        CaptureEvent(2.0, "close", 1, "127.0.0.1:80", "127.0.0.1:50000", b"", 0, "aborted", ""),
        CaptureEvent(3.0, "open", 2, "127.0.0.1:50001", "127.0.0.1:80", b"", 0, "connect",
                     "accepted"),
        CaptureEvent(4.0, "close", 2, "127.0.0.1:80", "127.0.0.1:50001", b"", 0,
                     "lost: ConnectionResetError(104)", ""),
    ]
    out = BytesIO()
    write_pcapng(events, out)
    packets = read_pcapng(out.getvalue())[2]
    segments = [dissect(p) for p in packets]
    assert (segments[3].flags, segments[3].src[1]) == (RST | ACK, 80)  # we aborted
    assert (segments[7].flags, segments[7].src[1]) == (RST | ACK, 50001)  # the peer reset
    assert packets[3].comment == "#1 aborted"


def test_bytes_not_kept_make_packets_shorter_than_they_were_and_say_why() -> None:
    events = [
        CaptureEvent(1.0, "data", 7, "10.0.0.1:21", "10.0.0.2:4000", b"", 3000, UNSEEN_OUT,
                     "out"),
        CaptureEvent(2.0, "data", 7, "10.0.0.1:21", "10.0.0.2:4000", b"abc", 2000, "", "out"),
    ]
    out = BytesIO()
    stats = write_pcapng(events, out)
    packets = read_pcapng(out.getvalue())[2]
    cut = [p for p in packets if p.original > len(p.data)]
    assert stats.truncated == len(cut) == 5  # 3000 B: 3 segments; 2000 B: 2 segments
    assert [p.comment for p in cut[:3]] == [f"3,000 B {UNSEEN_OUT}", "", ""]
    assert cut[3].comment.startswith("3 of 2,000 B of this write kept")
    assert dissect(cut[3]).payload == b"abc"
    assert [dissect(p).length for p in cut] == [1460, 1460, 80, 1460, 540]
    assert "first seen with data" in packets[0].comment  # the handshake is made up


def test_a_unix_connection_is_tcp_between_loopback_ports_and_says_so() -> None:
    events = [
        CaptureEvent(1.0, "open", 3, "unix:(unnamed)", "unix:/tmp/s.sock", b"", 0, "connect",
                     "accepted", False, "protocols.http.server.HTTPServerProtocol"),
        CaptureEvent(2.0, "data", 3, "unix:(unnamed)", "unix:/tmp/s.sock", b"hi", 2, "", "in"),
    ]
    out = BytesIO()
    write_pcapng(events, out)
    shb, _, packets = read_pcapng(out.getvalue())
    assert b"Unix socket connections are shown as TCP between 127.0.0.1 ports" in shb[1]
    syn = dissect(packets[0])
    assert str(syn.src[0]) == str(syn.dst[0]) == "127.0.0.1"
    assert packets[0].comment == (
        f"#3 unix:(unnamed) -> unix:/tmp/s.sock HTTPServerProtocol; Unix socket: "
        f"unix:(unnamed) shown as 127.0.0.1:{syn.src[1]}; unix:/tmp/s.sock shown as "
        f"127.0.0.1:{syn.dst[1]}")


def test_tls_is_marked_as_plaintext_in_the_file_and_the_connection() -> None:
    events = [CaptureEvent(1.0, "open", 1, "[::1]:50000", "[::1]:443", b"", 0, "connect",
                           "connected", True, "protocols.http.client.HTTPClientProtocol")]
    out = BytesIO()
    write_pcapng(events, out)
    shb, _, packets = read_pcapng(out.getvalue())
    assert b"TLS connections are shown as the plaintext the protocol saw" in shb[1]
    assert "TLS: the payload is the plaintext" in packets[0].comment
    assert struct.unpack_from("!H", packets[0].data, 12)[0] == 0x86DD


def test_an_ipv4_sender_to_an_ipv6_address_goes_as_ipv4_mapped_ipv6() -> None:
    events = [CaptureEvent(1.0, "data", None, "127.0.0.1:53", "[::1]:5353", b"q", 1, "",
                           "out")]
    out = BytesIO()
    write_pcapng(events, out)
    d = dissect(read_pcapng(out.getvalue())[2][0])
    assert str(d.src[0]) == "::ffff:7f00:1" and d.payload == b"q"


def test_save_writes_the_capture_and_says_what(tmp_path: Path) -> None:
    capture = Capture()
    t = SimpleNamespace(number=1, host="127.0.0.1:80", peer="127.0.0.1:5000",
                        listener=object())
    capture.opened(t)
    capture.data(t, "in", b"GET / HTTP/1.0\r\n\r\n")
    capture.closed(t, "closed")
    said = capture.save(tmp_path / "x.pcapng")
    assert repr(said) == (f"wrote {tmp_path / 'x.pcapng'}: 8 packets, 1 connections "
                          "(tshark -r, or Wireshark, reads it)")
    packets = read_pcapng((tmp_path / "x.pcapng").read_bytes())[2]
    assert len(packets) == 8


def test_the_checksum_is_rfc_1071s() -> None:
    # RFC 1071's example words 0001 f203 f4f5 f6f7 sum to ddf2 (with the carry folded)
    assert pcap.checksum(bytes.fromhex("0001f203f4f5f6f7")) == (~0xDDF2) & 0xFFFF
    assert pcap.checksum(b"\x01") == (~0x0100) & 0xFFFF
