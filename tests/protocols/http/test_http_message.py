"""HTTP messages as values: Response.text() and its charset."""

from __future__ import annotations

from protocols.http import Headers, Response


def test_text_uses_the_charset_the_server_names() -> None:
    r = Response("café".encode("latin-1"), headers=Headers({"Content-Type": "text/plain; "
                                                          "charset=iso-8859-1"}))
    assert r.text() == "café"


def test_text_falls_back_to_utf8_for_a_charset_python_does_not_know() -> None:
    r = Response("café".encode(), headers=Headers({"Content-Type": "text/html; charset=bogus"}))
    assert r.text() == "café"


def test_text_replaces_what_does_not_decode() -> None:
    assert Response(b"ok \xff").text() == "ok \ufffd"
