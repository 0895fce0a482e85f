"""conns() and listeners() name a protocol by its public name (issue 13).

A protocol class gives the name people see with a ``display_name`` class attribute;
without one the class name is shown. The HTTP client's pooled connection (a private
class) shows as ``http client``, the server's connections as ``http server``.
"""

from __future__ import annotations

from typing import Any

import netshell as ns
from netshell.shell.display import connection_table, display_name, listener_table
from protocols import http
from protocols.http.client import HTTPClient


class Plain(ns.Protocol):
    pass


class Named(ns.Protocol):
    display_name = "my protocol"


def test_display_name_defaults_to_the_class_name() -> None:
    assert display_name(Plain()) == "Plain"
    assert display_name(Plain) == "Plain"


def test_display_name_is_the_class_attribute_when_set() -> None:
    assert display_name(Named()) == "my protocol"
    assert display_name(Named) == "my protocol"


async def test_a_listener_and_its_connections_show_the_display_name(reactor: Any) -> None:
    listener = reactor.listen_tcp(0, ns.Factory.for_protocol(Named))
    client = await reactor.connect_tcp("127.0.0.1", listener.port,
                                       ns.ClientFactory.for_protocol(Plain))
    assert listener_table([listener]).cells()[0][4] == "my protocol"
    names = {c.protocol: connection_table([c]).cells()[0][4] for c in reactor.connections}
    assert names[client] == "Plain"
    assert "my protocol" in names.values()


async def test_the_http_clients_pooled_connection_shows_as_http_client(reactor: Any) -> None:
    app = http.App()

    @app.route("/")
    def index(request: Any) -> str:
        return "hello\n"

    server = http.serve(app, port=0)
    client = HTTPClient()
    try:
        response = await client.get(f"http://127.0.0.1:{server.port}/")
        assert response.status == 200
        # the connection stays in the client's keep-alive pool: it is live, and shown
        shown = [row[4] for row in connection_table(reactor.connections).cells()]
        # The listener too: its factory makes the protocols itself and names them.
        assert listener_table([server]).cells()[0][4] == "http server"
        assert "http client" in shown
        assert "http server" in shown
        assert not any("Connection" in name for name in shown), shown
    finally:
        client.close()
        await server.close()


class Data(ns.Protocol):
    display_name = "data"

    def __init__(self, control: Any = None) -> None:
        self.control = control


async def test_a_connection_serving_another_names_it(reactor: Any) -> None:
    # An FTP data connection's protocol points at its control connection's (``control``):
    # conns() shows which connection it serves, by that connection's number.
    listener = reactor.listen_tcp(0, ns.Factory.for_protocol(Named))
    control = await reactor.connect_tcp("127.0.0.1", listener.port,
                                        ns.ClientFactory.for_protocol(Plain))
    data = await reactor.connect_tcp("127.0.0.1", listener.port,
                                     ns.ClientFactory.for_protocol(Data, control))
    rows = {row[0]: row[4] for row in connection_table(reactor.connections).cells()}
    assert rows[f"#{data.transport.number}"] == f"data for #{control.transport.number}"
    assert rows[f"#{control.transport.number}"] == "Plain"
    # a control connection gone (no transport): the name alone
    data.control = Plain()
    assert connection_table([data.transport]).cells()[0][4] == "data"


async def test_an_irc_servers_connections_show_their_clients_nick(reactor: Any) -> None:
    # The instance names itself ("irc server alice"); the listener, from the class, does not.
    from protocols import irc

    server = irc.serve()
    try:
        alice = await irc.connect("127.0.0.1", server.port, "alice", reconnect=False)
        shown = [row[4] for row in connection_table(reactor.connections).cells()]
        assert "irc server alice" in shown, shown
        assert listener_table([server]).cells()[0][4] == "irc server"
        await alice.quit()
    finally:
        await server.close()


class BrokenName(ns.Protocol):
    @property
    def display_name(self) -> str:  # type: ignore[override]
        raise RuntimeError("broken")


def test_a_display_name_that_raises_falls_back_to_the_class_name() -> None:
    assert display_name(BrokenName()) == "BrokenName"
