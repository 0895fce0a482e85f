"""The ``netsh`` command line.

For now it answers ``--version`` and ``--help``; the prompt, ``netsh run``,
``netsh -c`` and ``netsh serve`` are added by the issues that build them.
"""

from __future__ import annotations

import argparse
import sys

import netshell


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="netsh",
        description="netshell: an interactive network shell on an event-driven core.",
        epilog="The interactive prompt is not built yet; try: python scripts/demo.py",
    )
    parser.add_argument("--version", action="version", version=f"netsh {netshell.__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``netsh`` with ``argv`` (default: the process's arguments); return the exit code."""
    parser = build_parser()
    parser.parse_args(argv)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
