"""What the server writes in a response head that a handler does not control: it never
sends a header a handler got wrong (a control character in a field name or value, or in a
reason phrase, is a 500 with nothing of the bad field), and its Date header is a valid
IMF-fixdate of the current second.

Each test reads the raw head off a real socket (http_raw_client), so what is checked is
what went on the wire.
"""

from __future__ import annotations

import re
import time
import types
from email.utils import formatdate, parsedate_to_datetime
from typing import Any

import pytest
from http_raw_client import RawClient, exchange, get_request

from protocols import http
from protocols.http import App, HTTPError, Request, Response
from protocols.http import server as http_server

# RFC 9110 section 5.5: a field value is VCHAR, obs-text, SP and HTAB; every other control
# (NUL, 0x01-0x1f but HTAB, and DEL) is forbidden. CR and LF would split the response.
VALUE_CONTROLS = [chr(c) for c in range(0x20) if c != 0x09] + ["\x7f"]
# RFC 9110 section 5.1: a field name is a token: no control at all (HTAB included), no
# space, no separator such as ":".
NAME_BREAKERS = [chr(c) for c in range(0x20)] + ["\x7f", " ", ":", "(", '"']


def char_id(c: str) -> str:
    return f"0x{ord(c):02x}"


def assert_clean_head(head: bytes) -> None:
    """Every line of ``head`` is a status line or a well-formed field line: no control
    but HTAB anywhere, every line ended by CRLF."""
    assert head.endswith(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    for line in lines:
        assert re.fullmatch(rb"[\t\x20-\x7e\x80-\xff]*", line), line
    for line in lines[1:]:
        assert re.fullmatch(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*", line), line


async def answer_of(response: Response) -> Any:
    listener = http.serve(lambda request: response)
    try:
        return await exchange(listener.port, get_request("/"))
    finally:
        await listener.close()


# ---- a control character in a header: 500, and nothing of the bad field


@pytest.mark.parametrize("control", VALUE_CONTROLS, ids=char_id)
async def test_a_control_character_in_a_header_value_is_a_500_without_the_field(
    control: str,
) -> None:
    answer = await answer_of(
        Response(b"body", headers={"X-Before": "fine", "X-Bad": f"left{control}right"})
    )
    assert answer.status == 500
    assert answer.body == b"500 Internal Server Error\n"
    # Nothing of the handler's response: not the bad field, nor a piece of its value, nor
    # the good field before it.
    for piece in (b"X-Bad", b"left", b"right", b"X-Before"):
        assert piece not in answer.head
    assert_clean_head(answer.head)


@pytest.mark.parametrize("control", VALUE_CONTROLS, ids=char_id)
async def test_a_control_character_in_a_framing_header_value_is_a_500_too(control: str) -> None:
    # The server writes Content-Length and Connection itself, but a handler's value for
    # them with a control in it is as wrong as any other: 500, never a 200 that hides it.
    for name, value in (("Connection", f"close{control}x"), ("Content-Length", f"4{control}")):
        answer = await answer_of(Response(b"body", headers={name: value}))
        assert answer.status == 500, (name, value)
        assert answer.body == b"500 Internal Server Error\n"
        assert_clean_head(answer.head)


@pytest.mark.parametrize("bad", NAME_BREAKERS, ids=char_id)
async def test_a_header_name_that_is_not_a_token_is_a_500_without_the_field(bad: str) -> None:
    answer = await answer_of(Response(b"body", headers={f"X-Le{bad}ft": "value-of-bad"}))
    assert answer.status == 500
    assert b"X-Le" not in answer.head and b"value-of-bad" not in answer.head
    assert_clean_head(answer.head)


@pytest.mark.parametrize("control", VALUE_CONTROLS, ids=char_id)
async def test_a_control_character_in_a_reason_phrase_is_a_500(control: str) -> None:
    answer = await answer_of(Response(b"body", 200, reason=f"Fine{control}Really"))
    assert answer.status == 500
    assert b"Fine" not in answer.head and b"Really" not in answer.head
    assert_clean_head(answer.head)


async def test_a_control_character_in_a_streamed_response_s_header_is_a_500() -> None:
    class Pieces:
        closed = False

        def __iter__(self) -> Any:
            yield b"never sent"

        def close(self) -> None:
            self.closed = True

    body = Pieces()
    answer = await answer_of(Response(body, headers={"X-Bad": "a\x00b"}))
    assert answer.status == 500
    assert b"X-Bad" not in answer.head and b"never sent" not in answer.body
    assert body.closed  # the stream that will not be sent is released


async def test_a_tab_inside_a_header_value_is_sent_as_it_is() -> None:
    # HTAB is allowed inside a field value (RFC 9110 section 5.5): the check above is not
    # a refusal of everything below 0x20.
    answer = await answer_of(Response(b"body", headers={"X-Tab": "a\tb", "X-Obs": "caf\xe9"}))
    assert answer.status == 200
    assert b"\r\nX-Tab: a\tb\r\n" in answer.head
    assert b"\r\nX-Obs: caf\xe9\r\n" in answer.head
    assert answer.body == b"body"


async def test_the_connection_serves_on_after_a_bad_header() -> None:
    controls = iter(VALUE_CONTROLS)
    listener = http.serve(
        lambda request: (
            Response(b"x", headers={"X-C": f"a{next(controls)}b"})
            if request.path == "/bad"
            else "good"
        )
    )
    client = await RawClient.connect(listener.port)
    for _ in VALUE_CONTROLS:
        client.send(get_request("/bad") + get_request("/"))
        bad, good = await client.answer(), await client.answer()
        assert (bad.status, good.status, good.body) == (500, 200, b"good")
        assert_clean_head(bad.head)
    client.close()
    await listener.close()


async def test_a_unicode_digit_content_length_on_a_stream_is_not_a_crash() -> None:
    # "²".isdigit() is True but int("²") raises: the server must not take the first for a
    # promise of the second. The declared length is not a number of bytes: the stream
    # goes chunked, as for any Content-Length the server cannot use.
    for declared in ("\u00b2", "\uff12"):
        answer = await answer_of(Response(iter([b"ab"]), headers={"Content-Length": declared}))
        assert (answer.status, answer.body) == (200, b"ab"), declared
        assert answer.headers["Transfer-Encoding"] == "chunked"
        assert_clean_head(answer.head)


# ---- the Date header

IMF_FIXDATE = re.compile(
    r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
    r" [0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)


def date_app() -> App:
    app = App()
    app.add_route("/text", lambda request: "text")  # the server's one-piece fast path
    app.add_route("/response", lambda request: Response(b"r", headers={"X-A": "1"}))

    @app.route("/error")
    def error(request: Request) -> Any:
        raise HTTPError(403, "no")

    return app


def check_imf_fixdate(value: str) -> float:
    """The time ``value`` stands for; fails unless it is an IMF-fixdate (RFC 9110 5.6.7)."""
    assert IMF_FIXDATE.fullmatch(value), value
    when = parsedate_to_datetime(value)
    assert when.utcoffset() is not None and when.utcoffset().total_seconds() == 0
    stamp = when.timestamp()
    # The day of the week is the right one for the date (formatdate computes it).
    assert formatdate(stamp, usegmt=True) == value
    return stamp


@pytest.mark.parametrize("path", ["/text", "/response", "/error"])
async def test_the_date_header_is_an_imf_fixdate_of_the_current_second(path: str) -> None:
    listener = http.serve(date_app())
    before = time.time()
    answer = await exchange(listener.port, get_request(path))
    after = time.time()
    await listener.close()
    assert answer.headers.get_all("Date") == [answer.headers["Date"]]  # one, not two
    stamp = check_imf_fixdate(answer.headers["Date"])
    # The Date is the second the answer was made in: within [before, after], to the second.
    assert int(before) <= stamp <= after, (before, stamp, after)


class WallClock:
    """Stands in for the ``time`` module in protocols.http.server: ``time()`` is ``now``."""

    def __init__(self, now: float) -> None:
        self.now = now

    def module(self) -> Any:
        return types.SimpleNamespace(
            time=lambda: self.now, strftime=time.strftime, localtime=time.localtime
        )


async def test_the_date_moves_on_when_the_second_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    # The server formats the Date once per second of the wall clock (time.time(), not the
    # reactor's clock): here that clock is a stand-in the test moves, so the second can
    # change between two requests on one kept-alive connection without any wait.
    wall = WallClock(1_000_000_000.25)
    monkeypatch.setattr(http_server, "time", wall.module())
    listener = http.serve(date_app())
    client = await RawClient.connect(listener.port)

    async def date(path: str = "/text") -> str:
        client.send(get_request(path))
        answer = await client.answer()
        check_imf_fixdate(answer.headers["Date"])
        return answer.headers["Date"]

    assert await date() == "Sun, 09 Sep 2001 01:46:40 GMT"
    wall.now = 1_000_000_000.999
    assert await date("/response") == "Sun, 09 Sep 2001 01:46:40 GMT"
    wall.now = 1_000_000_001.0
    assert await date() == "Sun, 09 Sep 2001 01:46:41 GMT"
    assert await date("/response") == "Sun, 09 Sep 2001 01:46:41 GMT"
    wall.now = 1_000_086_400.5  # a day later: the day of the week moves too
    assert await date("/error") == "Mon, 10 Sep 2001 01:46:40 GMT"
    client.close()
    await listener.close()
