"""TLS as a layer over any byte stream, and the TLS state of one stream connection.

:class:`TLSLayer` is a pyOpenSSL connection on memory BIOs, and does no I/O:
``receive(ciphertext)`` returns the plaintext it yields; ``send(plaintext)``
hands ciphertext to the ``write`` callable it was given. A test can drive two
back to back.

:class:`TLSConnection` is what a :class:`~netshell.transport.StreamTransport`
holds while TLS is on (``listen_tls``, ``connect_tls``, ``start_tls``
mid-stream): it drives a TLSLayer between the socket and the protocol, and
keeps the handshake's deadline, plaintext held while reading is paused,
close_notify on the way out and in, and handshake failure. It hands plaintext,
the end of the peer's data, and the connection's making back to the transport,
which alone talks to the protocol.

This module loads pyOpenSSL: :mod:`netshell.transport` imports it only when a
connection starts TLS. Contexts, certificates and the typed errors are in
:mod:`netshell.tls` and :mod:`netshell.errors`.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from OpenSSL import SSL

from netshell.errors import ConnectionLost, HandshakeFailed, TLSError
from netshell.failure import Failure

if TYPE_CHECKING:
    from netshell.defer import Deferred
    from netshell.transport import StreamTransport

__all__ = ["TLSConnection", "TLSHandshakeCut", "TLSInfo", "TLSLayer"]

_CHUNK = 256 * 1024


def _session_reused(conn: SSL.Connection) -> bool | None:
    """Whether ``conn``'s handshake resumed an earlier session; None if that cannot be told.

    pyOpenSSL has no public way to ask (none up to 26.4, nor in cryptography), so
    this is the one place netshell reaches into pyOpenSSL's internals: OpenSSL's
    ``SSL_session_reused`` through the private ``OpenSSL._util.lib`` binding, on the
    connection's private ``_ssl`` pointer. A pyOpenSSL that drops or renames either
    gives None here, never an error.
    """
    try:
        from OpenSSL._util import lib  # private: see above

        return bool(lib.SSL_session_reused(conn._ssl))
    except Exception:  # not every pyOpenSSL build exposes it
        return None


@dataclass(frozen=True)
class TLSInfo:
    """What a TLS connection negotiated, and who the peer's certificate says it is."""

    version: str
    cipher: str
    alpn: str | None
    sni: str | None
    session_reused: bool | None
    peer_subject: str | None = None
    peer_issuer: str | None = None
    peer_sans: list[str] = field(default_factory=list)
    peer_not_after: datetime.datetime | None = None


class TLSLayer:
    """One TLS connection's engine: ciphertext in and out on one side, plaintext on the other.

    ``context`` is a :class:`netshell.tls.TLSContext`; ``write`` takes the
    ciphertext to send. Plaintext sent before the handshake completes is held
    and sent, in order, right after it.
    """

    def __init__(
        self, context: Any, write: Callable[[bytes], Any], hostname: str | None = None
    ) -> None:
        self.context = context
        self.server_side: bool = context.server_side
        # The name the context was made to verify wins over the address dialled.
        self.hostname = context.hostname or hostname
        self.conn: SSL.Connection = context.connection(self.hostname)
        self._write = write
        self.established = False
        self.close_notify_sent = False
        self.close_notify_received = False
        self._pending: list[bytes] = []

    def start(self) -> None:
        """Begin the handshake (a client sends its hello now). Raises TLSError on failure."""
        if not self.server_side:  # a server can only wait for the client's hello
            self._handshake()

    def receive(self, data: bytes) -> list[bytes]:
        """Take ciphertext from the peer; return the plaintext chunks it completes.

        Raises a :class:`~netshell.TLSError` subclass when the handshake or a
        record fails; alerts for the peer have been handed to ``write`` by then.
        """
        self.conn.bio_write(data)
        if not self.established and not self._handshake():
            return []
        chunks: list[bytes] = []
        while not self.close_notify_received:
            try:
                chunks.append(self.conn.recv(_CHUNK))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self.close_notify_received = True
            except SSL.Error as e:
                self._flush()
                raise self.context.translate_error(self.conn, e) from e
        self._flush()
        return chunks

    def _handshake(self) -> bool:
        try:
            self.conn.do_handshake()
        except SSL.WantReadError:
            self._flush()
            return False
        except SSL.Error as e:
            self._flush()
            raise self.context.translate_error(self.conn, e) from e
        self._flush()
        self.context.check_peer(self.conn, self.hostname)
        self.established = True
        pending, self._pending = self._pending, []
        for data in pending:
            self.send(data)
        return True

    def send(self, data: bytes) -> None:
        """Encrypt ``data`` and hand it to ``write`` (held until the handshake is done).

        Raises TypeError for str, RuntimeError after close_notify was sent.
        """
        if isinstance(data, str):
            raise TypeError("TLS sends bytes, not str")
        if self.close_notify_sent:
            raise RuntimeError("send() after the TLS connection was shut down")
        if not self.established:
            self._pending.append(bytes(data))
            return
        view = memoryview(data)
        while view:
            n = self.conn.send(view)
            view = view[n:]
        self._flush()

    def shutdown(self) -> None:
        """Send close_notify (once): nothing more is sent after it."""
        if self.close_notify_sent:
            return
        self.close_notify_sent = True
        try:
            self.conn.shutdown()
        except SSL.Error:
            pass  # a broken connection cannot say goodbye; closing goes on
        self._flush()

    def _flush(self) -> None:
        while True:
            try:
                data = self.conn.bio_read(_CHUNK)
            except SSL.WantReadError:
                return
            if not data:
                return
            self._write(data)
            if len(data) < _CHUNK:
                return  # a memory BIO gives all it holds: a short read emptied it

    def info(self) -> TLSInfo:
        """The negotiated parameters and the peer certificate's details."""
        conn = self.conn
        alpn = conn.get_alpn_proto_negotiated()
        sni = conn.get_servername()
        reused = _session_reused(conn)
        info = TLSInfo(
            version=conn.get_protocol_version_name(),
            cipher=conn.get_cipher_name() or "",
            alpn=alpn.decode() if alpn else None,
            sni=sni.decode() if sni else None,
            session_reused=reused,
        )
        cert = conn.get_peer_certificate()
        if cert is None:
            return info
        c = cert.to_cryptography()
        sans: list[str] = []
        try:
            from cryptography import x509

            ext = c.extensions.get_extension_for_class(x509.SubjectAlternativeName)
            sans = [str(v) for v in ext.value.get_values_for_type(x509.DNSName)]
            sans += [str(v) for v in ext.value.get_values_for_type(x509.IPAddress)]
        except Exception:
            pass
        return TLSInfo(
            version=info.version,
            cipher=info.cipher,
            alpn=info.alpn,
            sni=info.sni,
            session_reused=info.session_reused,
            peer_subject=c.subject.rfc4514_string(),
            peer_issuer=c.issuer.rfc4514_string(),
            peer_sans=sans,
            peer_not_after=c.not_valid_after_utc,
        )

    def __repr__(self) -> str:
        side = "server" if self.server_side else "client"
        state = "established" if self.established else "handshaking"
        if self.close_notify_sent or self.close_notify_received:
            state = "closing"
        return f"<TLSLayer {side} {self.hostname or ''} {state}>"


class TLSHandshakeCut(HandshakeFailed):
    """The connection ended during the TLS handshake."""

    def __init__(self, exc: BaseException | None = None) -> None:
        super().__init__(f"the connection ended during the TLS handshake ({exc or 'closed'})")


class TLSConnection:
    """The TLS state machine of one stream connection, held by its transport while TLS is on.

    It drives a :class:`TLSLayer` (``layer``) between the socket and the protocol:
    ciphertext from the socket goes in through :meth:`received`, and the plaintext goes
    out through ``deliver``, or waits in ``held`` while reading is paused. It keeps the
    handshake's deadline (``handshake_timeout`` seconds, or shorter with
    :meth:`limit_handshake`), the wait for the peer's close_notify after :meth:`close`,
    and fails the handshake (:meth:`fail`) with a :class:`~netshell.TLSError`: the
    connection is then closed, ``started`` (the Deferred of ``start_tls``) and the
    connection's own made-Deferred fail with it.

    It never talks to the protocol, nor reaches into ``transport``: the transport hands it,
    at construction, what it may do through it, and reads only its public attributes
    (``protocol``, ``lost``, ``bytes_received``, ``peer``, ``tls``, ``close()``):

    - ``raw``: the asyncio transport under the connection (``write``, ``close``,
      ``is_closing``), where ciphertext goes;
    - ``call_later``: the reactor's, for the deadlines;
    - ``deliver(plaintext) -> bool``: hand plaintext to the protocol (False if it raised);
    - ``deliver_eof() -> bool | None``: tell the protocol the peer's close_notify came
      (the truth of its answer: keep the connection open; None if it raised);
    - ``attach()``: make the connection, once the handshake is done (``listen_tls`` /
      ``connect_tls``: the protocol meets it only then);
    - ``failed(exc) -> bool``: record the handshake's failure on the connection; False if
      it failed already with another error (then there is nothing more to do);
    - ``fail_made(exc)``: fail the connection's made-Deferred;
    - ``held``: data held before TLS began, delivered first when reading resumes.

    ``reading_paused`` tells whether the protocol paused reading: the transport sets it
    (from ``reading_paused`` at construction, then in ``pause_reading`` / ``resume_reading``).

    ``timer`` is the pending :class:`~netshell.reactor.DelayedCall` (the handshake's
    deadline, or the close_notify wait), or None. Used by the transport only.
    """

    __slots__ = (
        "_attach",
        "_call_later",
        "_deliver",
        "_deliver_eof",
        "_fail_made",
        "_failed",
        "_raw",
        "handshake_timeout",
        "held",
        "layer",
        "reading_paused",
        "started",
        "timer",
        "transport",
    )

    def __init__(
        self,
        transport: StreamTransport,
        context: Any,
        hostname: str | None,
        started: Deferred[Any] | None,
        handshake_timeout: float,
        *,
        raw: Any,
        call_later: Callable[..., Any],
        deliver: Callable[[bytes], bool],
        deliver_eof: Callable[[], bool | None],
        attach: Callable[[], None],
        failed: Callable[[BaseException], bool],
        fail_made: Callable[[BaseException], None],
        reading_paused: bool,
        held: list[bytes] | None = None,
    ) -> None:
        self.transport = transport
        self._raw = raw
        self._call_later = call_later
        self._deliver = deliver
        self._deliver_eof = deliver_eof
        self._attach = attach
        self._failed = failed
        self._fail_made = fail_made
        self.reading_paused = reading_paused
        #: plaintext waiting for the protocol to resume reading, in order (or None)
        self.held: list[bytes] | None = held or None
        self.layer = TLSLayer(context, raw.write, hostname)
        self.started = started
        self.handshake_timeout = handshake_timeout
        # A peer that never completes the handshake must not hold the connection forever.
        self.timer: Any = call_later(handshake_timeout, self._handshake_timed_out)

    @property
    def established(self) -> bool:
        """Whether the handshake (and the check of the peer's certificate) succeeded."""
        return self.layer.established

    def info(self) -> TLSInfo:
        """The negotiated parameters and the peer certificate's details."""
        return self.layer.info()

    def start(self) -> None:
        """Begin the handshake (a client sends its hello now); a failure fails it."""
        try:
            self.layer.start()
        except TLSError as e:
            self.fail(e)

    def limit_handshake(self, seconds: float, exc: BaseException) -> None:
        """Fail the handshake with ``exc`` unless it is done within ``seconds`` (instead of
        ``handshake_timeout``): ``connect_tls``'s timeout covers the handshake too."""
        self._cancel_timer()
        self.timer = self._call_later(seconds, self.fail, exc)

    def _handshake_timed_out(self) -> None:
        self.timer = None
        self.fail(HandshakeFailed(f"no TLS handshake within {self.handshake_timeout} seconds"))

    def _cancel_timer(self) -> None:
        timer, self.timer = self.timer, None
        if timer is not None and timer.active():
            timer.cancel()

    # ---- the peer's bytes

    def received(self, data: bytes) -> None:
        """Take ciphertext from the socket; deliver the plaintext it completes, or hold it."""
        t = self.transport
        layer = self.layer
        was_established = layer.established
        try:
            chunks = layer.receive(data)
        except TLSError as e:
            self.fail(e)
            return
        if layer.established and not was_established:
            self._handshake_done()
            if t.protocol is None or t.lost:
                return
        if self.held or (chunks and self.reading_paused):
            # Reading is paused (or older plaintext waits): keep it for resume_reading().
            if self.held is None:
                self.held = []
            self.held.extend(chunks)
            return
        self.deliver(chunks)

    def deliver(self, chunks: list[bytes]) -> None:
        """Hand plaintext to the protocol through the transport, chunk by chunk, holding what
        follows a pause; then act on the peer's close_notify, if it came."""
        t = self.transport
        deliver = self._deliver
        for i, chunk in enumerate(chunks):
            if self.reading_paused:
                # One socket read can hold many records: what follows a pause waits.
                self.held = chunks[i:] + (self.held or [])
                return
            t.bytes_received += len(chunk)
            if not deliver(chunk):
                return
        layer = self.layer
        if layer.close_notify_received and not t.lost:
            if layer.close_notify_sent:
                self._raw.close()  # both said goodbye
            else:
                keep_open = self._deliver_eof()
                if keep_open is None:
                    return  # the protocol raised: its connection is aborted
                if not keep_open:
                    t.close()

    def release_held(self) -> None:
        """Deliver the plaintext held while reading was paused (``resume_reading``)."""
        held, self.held = self.held or [], None
        if not self.transport.lost:
            self.deliver(held)  # plaintext, counted as delivered

    def _handshake_done(self) -> None:
        t = self.transport
        self._cancel_timer()
        if t.protocol is None:
            self._attach()  # listen_tls / connect_tls
        started, self.started = self.started, None
        if started is not None:
            started.callback(t.tls)

    def fail(self, exc: BaseException) -> None:
        """The handshake failed (or timed out): fail whoever waits for it, close the socket."""
        self._cancel_timer()
        if isinstance(exc, TLSError) and exc.port is None:
            # The error knows the host it verified; the port makes "HOST:PORT" for messages.
            exc.port = getattr(self.transport.peer, "port", None)
        if not self._failed(exc):
            return  # failed already (this is connection_lost after the failure)
        started, self.started = self.started, None
        if started is not None and not started.called:
            started.errback(Failure(exc))
        self._fail_made(exc)
        if not self.transport.lost:
            self._raw.close()  # sends the alert the layer queued, then closes

    # ---- our side

    def send(self, data: bytes) -> None:
        """Encrypt and send ``data`` (held until the handshake is done)."""
        self.layer.send(data)

    def write_eof(self) -> None:
        """Send close_notify, TLS's only half-close."""
        self.layer.shutdown()

    def closing(self) -> bool:
        """close() was called: close_notify is sent, the peer's awaited (write_eof is not this)."""
        return self.layer.close_notify_sent and (self.timer is not None or self._raw.is_closing())

    def close(self, timeout: float) -> bool:
        """Send close_notify and wait for the peer's, at most ``timeout`` seconds, before the
        socket closes: True if it waits (the socket is closed later), False if the transport
        should close the socket now."""
        t = self.transport
        layer = self.layer
        if layer.established and not layer.close_notify_sent and not t.lost:
            layer.shutdown()
            if not layer.close_notify_received:
                self._cancel_timer()
                self.timer = self._call_later(timeout, self._raw.close)
                return True
        return False

    # ---- the end

    def connection_lost(self, exc: BaseException | None, error: BaseException | None) -> None:
        """The socket is gone (with ``exc``): stop the timer; a handshake not done fails, with
        ``error`` (what the connection failed with already, if anything) or
        :class:`TLSHandshakeCut`."""
        self._cancel_timer()
        if not self.layer.established:
            self.fail(error or TLSHandshakeCut(exc))

    def truncation(self) -> ConnectionLost | None:
        """Why a connection that ended with no error was not closed cleanly: neither side
        sent close_notify, so the data may have been cut short (else None)."""
        layer = self.layer
        if layer.close_notify_received or layer.close_notify_sent:
            return None
        return ConnectionLost(
            "the peer closed the connection without a TLS close_notify: the data may "
            "have been truncated"
        )

    def __repr__(self) -> str:
        return f"<TLSConnection {self.layer!r} of connection #{self.transport.number}>"
