"""Routing (App) and the values a handler may return (to_response), with no server."""

from __future__ import annotations

import json

import pytest

from protocols.http import App, HTTPError, Request, Response
from protocols.http.app import MethodNotAllowed, NotFound, error_response, to_response


def req(method: str, path: str) -> Request:
    return Request(method, path, path=path)


def test_a_plain_route_calls_its_handler() -> None:
    app = App()
    app.add_route("/hello", lambda r: "hi")
    assert app(req("GET", "/hello")) == "hi"


def test_a_parameter_matches_one_segment_and_lands_in_params() -> None:
    app = App()
    app.add_route("/items/{id}", lambda r: r.params)
    assert app(req("GET", "/items/42")) == {"id": "42"}


def test_a_parameter_does_not_match_across_a_slash() -> None:
    app = App()
    app.add_route("/items/{id}", lambda r: r.params)
    with pytest.raises(NotFound):
        app.resolve(req("GET", "/items/4/2"))


def test_a_path_parameter_takes_the_rest_of_the_path() -> None:
    app = App()
    app.add_route("/files/{rest:path}", lambda r: r.params["rest"])
    assert app(req("GET", "/files/a/b/c.txt")) == "a/b/c.txt"


def test_several_parameters_in_one_pattern() -> None:
    app = App()
    app.add_route("/u/{user}/posts/{post}", lambda r: r.params)
    assert app(req("GET", "/u/ann/posts/7")) == {"user": "ann", "post": "7"}


def test_an_unknown_path_is_404() -> None:
    app = App()
    app.add_route("/a", lambda r: "a")
    with pytest.raises(NotFound) as info:
        app.resolve(req("GET", "/b"))
    assert info.value.status == 404


def test_a_known_path_with_another_method_is_405_with_allow() -> None:
    app = App()
    app.add_route("/a", lambda r: "a", methods=["GET", "POST"])
    with pytest.raises(MethodNotAllowed) as info:
        app.resolve(req("DELETE", "/a"))
    assert info.value.status == 405
    assert info.value.headers["Allow"] == "GET, HEAD, POST"


def test_405_lists_the_methods_of_every_pattern_matching_the_path() -> None:
    app = App()
    app.add_route("/x/{id}", lambda r: "get", methods=["GET"])
    app.add_route("/x/{name}", lambda r: "put", methods=["PUT"])
    with pytest.raises(MethodNotAllowed) as info:
        app.resolve(req("POST", "/x/1"))
    assert info.value.allowed == ["GET", "HEAD", "PUT"]


def test_a_later_pattern_answers_a_method_an_earlier_one_lacks() -> None:
    app = App()
    app.add_route("/x/{id}", lambda r: "get", methods=["GET"])
    app.add_route("/x/{name}", lambda r: r.params["name"], methods=["PUT"])
    assert app(req("PUT", "/x/1")) == "1"


def test_head_is_answered_by_the_get_handler() -> None:
    app = App()
    app.add_route("/a", lambda r: "from get")
    assert app(req("HEAD", "/a")) == "from get"


def test_head_is_not_routed_to_a_post_only_handler() -> None:
    app = App()
    app.add_route("/a", lambda r: "posted", methods=["POST"])
    with pytest.raises(MethodNotAllowed):
        app.resolve(req("HEAD", "/a"))


def test_a_plain_path_wins_over_a_pattern() -> None:
    app = App()
    app.add_route("/items/{id}", lambda r: "pattern")
    app.add_route("/items/new", lambda r: "plain")
    assert app(req("GET", "/items/new")) == "plain"


def test_patterns_are_tried_in_the_order_they_were_added() -> None:
    app = App()
    app.add_route("/{a}/x", lambda r: "first")
    app.add_route("/y/{b}", lambda r: "second")
    assert app(req("GET", "/y/x")) == "first"


def test_the_decorator_registers_and_returns_the_function() -> None:
    app = App()

    @app.route("/d", methods=["post"])
    def handler(request: Request) -> str:
        return "ok"

    assert handler(req("POST", "/d")) == "ok"
    assert app(req("POST", "/d")) == "ok"


def test_routes_lists_every_route_with_its_methods() -> None:
    app = App()
    app.add_route("/a", lambda r: 1)
    app.add_route("/b/{x}", lambda r: 2, methods=["PUT"])
    assert [(r.pattern, sorted(r.handlers)) for r in app.routes] == [
        ("/a", ["GET", "HEAD"]),
        ("/b/{x}", ["PUT"]),
    ]


def test_the_same_method_routed_twice_is_refused() -> None:
    app = App()
    app.add_route("/a", lambda r: 1)
    with pytest.raises(ValueError, match="GET /a"):
        app.add_route("/a", lambda r: 2)


@pytest.mark.parametrize(
    "pattern", ["no-slash", "/a/{", "/a/{1x}", "/a/{x}/{x}", "/a/}b", "/{x:int}"]
)
def test_malformed_patterns_are_refused(pattern: str) -> None:
    with pytest.raises(ValueError):
        App().add_route(pattern, lambda r: 1)


def test_methods_as_a_string_are_refused() -> None:
    with pytest.raises(TypeError):
        App().add_route("/a", lambda r: 1, methods="GET")  # type: ignore[arg-type]


def test_regex_characters_in_a_pattern_are_literal() -> None:
    app = App()
    app.add_route("/a.b/{x}", lambda r: r.params["x"])
    assert app(req("GET", "/a.b/1")) == "1"
    with pytest.raises(NotFound):
        app.resolve(req("GET", "/aXb/1"))


def test_to_response_keeps_a_response() -> None:
    r = Response(b"x", 201)
    assert to_response(r) is r


def test_to_response_of_bytes_is_octet_stream() -> None:
    r = to_response(b"\x00\x01")
    assert (r.status, r.body, r.headers["content-type"]) == (
        200,
        b"\x00\x01",
        "application/octet-stream",
    )


def test_to_response_of_str_is_utf8_text() -> None:
    r = to_response("café")
    assert r.body == "café".encode()
    assert r.headers["content-type"] == "text/plain; charset=utf-8"


def test_to_response_of_a_dict_is_json() -> None:
    r = to_response({"a": [1, 2]})
    assert json.loads(r.body) == {"a": [1, 2]}
    assert r.headers["content-type"] == "application/json"


def test_to_response_of_none_is_204() -> None:
    assert to_response(None).status == 204


def test_to_response_of_anything_else_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="int"):
        to_response(42)


def test_error_response_is_plain_text_with_the_errors_own_headers() -> None:
    response = error_response(MethodNotAllowed(["GET"]))
    assert response.status == 405
    assert response.body == b"405 Method Not Allowed\n"
    assert response.headers["allow"] == "GET"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert error_response(HTTPError(404)).body == b"404 Not Found\n"
    assert error_response(HTTPError(500, "the secret")).body == b"500 Internal Server Error\n"
