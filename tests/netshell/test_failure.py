"""Failure: an exception kept with its traceback; check, trap, formatting, debugging.

Each test pins one behaviour. Tests that turn debugging on take the
``debugging`` fixture, which always turns it off again.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

import netshell as ns
from netshell import Failure

# ---- helpers


@pytest.fixture
def debugging() -> Iterator[None]:
    ns.set_debugging(True)
    try:
        yield
    finally:
        ns.set_debugging(False)


def explode_with_a_local() -> None:
    secret_local = "hush-hush"  # noqa: F841 - read back through Failure.frames
    raise ValueError("exploded")


def failure_from_explode() -> Failure:
    try:
        explode_with_a_local()
    except ValueError:
        return Failure()
    raise AssertionError("explode_with_a_local did not raise")


def tb_function_names(tb: object) -> list[str]:
    return [frame.name for frame in traceback.extract_tb(tb)]  # type: ignore[arg-type]


def raising_line() -> int:
    """The line number of the ``raise`` in explode_with_a_local."""
    lines, start = __import__("inspect").getsourcelines(explode_with_a_local)
    for offset, text in enumerate(lines):
        if text.strip().startswith("raise"):
            return start + offset
    raise AssertionError("no raise line found")


# ---- construction


def test_failure_with_no_argument_inside_except_takes_the_current_exception() -> None:
    error = KeyError("k")
    try:
        raise error
    except KeyError:
        f = Failure()
    assert f.value is error


def test_failure_with_no_argument_inside_except_takes_the_current_traceback() -> None:
    try:
        explode_with_a_local()
    except ValueError as e:
        f = Failure()
        expected_tb = e.__traceback__
    assert f.tb is expected_tb
    assert "explode_with_a_local" in tb_function_names(f.tb)


def test_failure_with_no_argument_outside_except_raises_no_current_exception_error() -> None:
    assert sys.exception() is None
    with pytest.raises(ns.NoCurrentExceptionError):
        Failure()


def test_failure_of_an_exception_instance_wraps_that_instance() -> None:
    error = RuntimeError("wrapped")
    assert Failure(error).value is error


def test_failure_of_an_exception_class_wraps_a_new_instance_of_it() -> None:
    f = Failure(LookupError)
    assert isinstance(f.value, LookupError)
    assert f.type is LookupError


def test_type_is_the_class_of_the_wrapped_exception() -> None:
    assert Failure(ZeroDivisionError("z")).type is ZeroDivisionError


def test_failure_of_a_raised_exception_keeps_its_traceback() -> None:
    try:
        explode_with_a_local()
    except ValueError as e:
        error = e
    f = Failure(error)
    assert f.tb is error.__traceback__
    assert tb_function_names(f.tb)[-1] == "explode_with_a_local"


def test_failure_of_an_exception_never_raised_has_no_traceback() -> None:
    assert Failure(ValueError("never raised")).tb is None


@pytest.mark.parametrize("not_an_exception", [42, "text", object(), [ValueError]])
def test_failure_of_a_non_exception_value_raises_type_error(not_an_exception: object) -> None:
    with pytest.raises(TypeError):
        Failure(not_an_exception)  # type: ignore[arg-type]


def test_failure_of_a_class_that_is_not_an_exception_raises_type_error() -> None:
    with pytest.raises(TypeError):
        Failure(int)  # type: ignore[arg-type]


# ---- check


def test_check_returns_the_matching_type_given() -> None:
    assert Failure(KeyError("k")).check(KeyError) is KeyError


def test_check_returns_a_base_class_given_when_the_exception_is_a_subclass() -> None:
    assert Failure(ZeroDivisionError()).check(ArithmeticError) is ArithmeticError


def test_check_returns_the_first_matching_type_of_several() -> None:
    f = Failure(ZeroDivisionError())
    assert f.check(KeyError, ArithmeticError, ZeroDivisionError) is ArithmeticError


def test_check_returns_none_when_nothing_matches() -> None:
    assert Failure(KeyError("k")).check(ValueError, TypeError) is None


def test_check_with_no_types_returns_none() -> None:
    assert Failure(KeyError("k")).check() is None


class _Base(Exception):
    pass


class _Left(_Base):
    pass


class _Right(_Base):
    pass


class _Leaf(_Left):
    pass


_POOL: list[type[BaseException]] = [
    BaseException,
    Exception,
    _Base,
    _Left,
    _Right,
    _Leaf,
    ValueError,
    KeyError,
    LookupError,
]


@given(
    raised=st.sampled_from([_Base, _Left, _Right, _Leaf, ValueError, KeyError]),
    types=st.lists(st.sampled_from(_POOL), max_size=6),
)
def test_check_is_the_first_given_type_the_exception_is_an_instance_of(
    raised: type[BaseException], types: list[type[BaseException]]
) -> None:
    expected = next((t for t in types if issubclass(raised, t)), None)
    assert Failure(raised()).check(*types) is expected


# ---- trap


def test_trap_returns_the_matching_type_given() -> None:
    assert Failure(KeyError("k")).trap(ValueError, LookupError) is LookupError


def test_trap_reraises_the_original_exception_object_when_nothing_matches() -> None:
    f = failure_from_explode()
    with pytest.raises(ValueError) as info:
        f.trap(KeyError, TypeError)
    assert info.value is f.value


def test_trap_reraise_keeps_the_original_traceback() -> None:
    f = failure_from_explode()
    with pytest.raises(ValueError) as info:
        f.trap(KeyError)
    names = tb_function_names(info.value.__traceback__)
    assert names[-1] == "explode_with_a_local"
    assert "failure_from_explode" in names


# ---- formatting and re-raising


def test_get_traceback_names_the_function_where_the_exception_was_raised() -> None:
    text = failure_from_explode().get_traceback()
    assert text.startswith("Traceback (most recent call last)")
    assert "in explode_with_a_local" in text


def test_get_traceback_ends_with_the_exception_type_and_message() -> None:
    text = failure_from_explode().get_traceback()
    assert text.rstrip().splitlines()[-1] == "ValueError: exploded"


def test_get_traceback_names_the_line_that_raised() -> None:
    text = failure_from_explode().get_traceback()
    assert f"line {raising_line()}, in explode_with_a_local" in text


def test_raise_exception_raises_the_wrapped_exception_object() -> None:
    error = OSError("disk")
    with pytest.raises(OSError) as info:
        Failure(error).raise_exception()
    assert info.value is error


def test_raise_exception_keeps_the_original_traceback() -> None:
    f = failure_from_explode()
    with pytest.raises(ValueError) as info:
        f.raise_exception()
    assert tb_function_names(info.value.__traceback__)[-1] == "explode_with_a_local"


def test_get_error_message_is_the_exception_message() -> None:
    assert Failure(ValueError("bad input: 7")).get_error_message() == "bad input: 7"


# ---- cheap unless debugging


def test_frames_are_not_captured_without_debugging() -> None:
    assert not ns.get_debugging()
    assert failure_from_explode().frames is None


def test_get_traceback_shows_no_locals_without_debugging() -> None:
    text = failure_from_explode().get_traceback()
    assert "secret_local" not in text
    assert "hush-hush" not in text


def test_set_debugging_turns_get_debugging_on_and_off() -> None:
    try:
        ns.set_debugging(True)
        on = ns.get_debugging()
        ns.set_debugging(False)
        off = ns.get_debugging()
    finally:
        ns.set_debugging(False)
    assert (on, off) == (True, False)


def test_frames_hold_function_file_line_and_local_reprs_with_debugging(debugging: None) -> None:
    f = failure_from_explode()
    assert f.frames is not None
    by_name = {frame[0]: frame for frame in f.frames}
    _, filename, line, local_reprs = by_name["explode_with_a_local"]
    assert filename == __file__
    assert line == raising_line()
    assert local_reprs == {"secret_local": repr("hush-hush")}


def test_frames_run_from_the_catching_function_to_the_raising_one_with_debugging(
    debugging: None,
) -> None:
    f = failure_from_explode()
    assert f.frames is not None
    assert [frame[0] for frame in f.frames] == ["failure_from_explode", "explode_with_a_local"]


def test_get_traceback_shows_the_locals_with_debugging(debugging: None) -> None:
    text = failure_from_explode().get_traceback()
    assert "in explode_with_a_local" in text
    assert "secret_local = 'hush-hush'" in text
    assert text.rstrip().splitlines()[-1] == "ValueError: exploded"


def test_failures_made_after_debugging_is_turned_off_capture_no_frames() -> None:
    try:
        ns.set_debugging(True)
        with_debugging = failure_from_explode()
    finally:
        ns.set_debugging(False)
    without = failure_from_explode()
    assert with_debugging.frames is not None
    assert without.frames is None
