"""The ``netsh`` command line.

``netsh`` starts the prompt; ``netsh --ipython`` the same namespace in IPython.
The prompt's modules (prompt_toolkit, IPython) are imported only when asked for.
"""

from __future__ import annotations

import argparse
import logging
import sys

import netshell

EXAMPLES = """\
examples:
  netsh                          the prompt, with a live reactor
  netsh --ipython                the same names in IPython
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netsh",
        description="netshell: an interactive network shell on an event-driven core.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"netsh {netshell.__version__}")
    parser.add_argument("--ipython", action="store_true",
                        help="use IPython's terminal (autoawait, asyncio loop) for the prompt")
    parser.add_argument("--log-level", default="WARNING",
                        help="log records at this level and above are shown (default WARNING)")
    parser.add_argument("--uvloop", action="store_true", help="run the reactor on uvloop")
    return parser


def _level(name: str) -> int:
    level = logging.getLevelName(name.upper())
    if not isinstance(level, int):
        raise SystemExit(f"netsh: unknown log level {name!r}")
    return level


def main(argv: list[str] | None = None) -> int:
    """Run ``netsh`` with ``argv`` (default: the process's arguments); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = _level(args.log_level)
    if args.ipython:
        from netshell.shell.ipython import run_ipython

        return run_ipython(log_level=level)
    from netshell.shell.prompt import run_prompt

    return run_prompt(log_level=level, use_uvloop=True if args.uvloop else None)


if __name__ == "__main__":
    sys.exit(main())
