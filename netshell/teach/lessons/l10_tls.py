"""Lesson 10: TLS with a throwaway certificate (``tls.self_signed``)."""

from __future__ import annotations

from typing import Any

from netshell.teach.lessons.base import Lesson, NotYet, State, Step, failure_of


def _certificates(state: State) -> list[tuple[bytes, Any]]:
    from cryptography import x509

    found = []
    for v in state.values(bytes):
        if v.startswith(b"-----BEGIN CERTIFICATE-----"):
            try:
                found.append((v, x509.load_pem_x509_certificate(v)))
            except ValueError:
                continue
    return found


def _is_ca(cert: Any) -> bool:
    from cryptography import x509

    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _made(state: State) -> str:
    from cryptography import x509

    certs = _certificates(state)
    cas = [c for _, c in certs if _is_ca(c)]
    for _, leaf in certs:
        if _is_ca(leaf):
            continue
        for ca in cas:
            if leaf.issuer == ca.subject:
                names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                sans = [str(getattr(n, "value", n)) for n in names.value]
                return (f"a certificate for {', '.join(sans)}, signed by your own authority, "
                        f"valid until {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
    raise NotYet("no certificate and the authority that signed it are in your names yet")


def _cas(state: State) -> list[bytes]:
    return [pem for pem, c in _certificates(state) if _is_ca(c)]


async def _serving(state: State) -> str:
    from netshell import tls

    listeners = [x for x in state.listeners() if x.tls_context is not None]
    if not listeners:
        raise NotYet("no TLS listener is open")
    cas = _cas(state)
    if not cas:
        raise NotYet("keep the authority's certificate (ca) in a name: the check trusts it")
    payload = b"over TLS\r\n"
    for x in listeners:
        for ca in cas:
            context = tls.client_context("127.0.0.1", ca=ca)
            got = await state.exchange(x.port, payload, until=lambda b: len(b) >= len(payload),
                                       timeout=3.0, context=context)
            if got.got == payload and got.tls is not None:
                return (f"listener #{x.number} answered over {got.tls.version} with a "
                        "certificate your authority signed, and echoed the check's bytes")
    raise NotYet("no TLS listener echoed the check's bytes with a certificate your "
                 "authority signed")


def _client(state: State) -> str:
    for c in reversed(state.connections(client=True)):
        info = c.tls
        if info is not None:
            return (f"connection #{c.number}: {info.version}, {info.cipher}; the server's "
                    f"certificate names {', '.join(info.peer_sans)}")
    raise NotYet("no client connection of yours speaks TLS")


def _refused(state: State) -> str:
    import netshell as ns

    for s in reversed(state.settled()):
        if failure_of(s.result, ns.TLSError):
            return (f"the client refused the server: {s.result.type.__name__}: "
                    f"{s.result.value}")
    raise NotYet("no TLS connection has been refused in this step")


LESSON = Lesson(
    10,
    "TLS with a throwaway certificate",
    "TLS in netshell is a layer between a connection's socket and its protocol: the same\n"
    "protocol runs in clear or encrypted. Clients check the server's certificate and name,\n"
    "so a test server needs a certificate its clients trust.",
    [
        Step(
            "make a throwaway certificate authority and a certificate it signs:\n"
            "    cert, key, ca = tls.self_signed()\n"
            "It is for localhost, 127.0.0.1 and ::1.",
            _made,
            "tls.self_signed() returns (cert, key, ca) as PEM bytes; keep all three",
            ["cert, key, ca = tls.self_signed()"],
        ),
        Step(
            "serve the library's echo protocol over TLS with it:\n"
            "    ctx = tls.server_context(cert, key)\n"
            "    srv = reactor.listen_tls(0, Factory.for_protocol(wire.Echo), ctx)",
            _serving,
            "reactor.listen_tls(port, factory, tls.server_context(cert, key))",
            ["ctx = tls.server_context(cert, key)",
             "srv = reactor.listen_tls(0, Factory.for_protocol(wire.Echo), ctx)"],
        ),
        Step(
            "connect as a client that trusts your authority, and only it:\n"
            '    trust = tls.client_context("127.0.0.1", ca=ca)\n'
            "    factory = ClientFactory.for_protocol(Protocol)\n"
            '    p = await reactor.connect_tls("127.0.0.1", srv.port, factory, trust)\n'
            "    p.transport.tls",
            _client,
            'tls.client_context("127.0.0.1", ca=ca), then reactor.connect_tls(host, port, '
            "factory, context)",
            ['trust = tls.client_context("127.0.0.1", ca=ca)',
             "factory = ClientFactory.for_protocol(Protocol)",
             'p = await reactor.connect_tls("127.0.0.1", srv.port, factory, trust)',
             "p.transport.tls"],
        ),
        Step(
            "without your authority, a client trusts the system's, and refuses the server:\n"
            '    await connect(f"tls:127.0.0.1:{srv.port}", Protocol)',
            _refused,
            'connect(f"tls:127.0.0.1:{srv.port}", Protocol) verifies against the system\'s '
            "authorities",
            ['await connect(f"tls:127.0.0.1:{srv.port}", Protocol)'],
        ),
    ],
    "http.serve, ftp.serve and irc.serve take tls= a server context the same way.",
)

__all__ = ["LESSON"]
