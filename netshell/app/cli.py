"""The ``netsh`` command line: the prompt, ``run``, ``-c``, ``serve`` and ``diff``.

The prompt's terminal libraries (prompt_toolkit, IPython) are imported only
when the prompt is asked for: ``netsh run``, ``-c``, ``serve`` and ``diff``
never load them. A bare ``netsh`` goes straight to the prompt: with nothing to
parse, argparse is not even imported (the prompt is wanted fast; see
docs/performance.md, Start-up).
"""

from __future__ import annotations

import io
import logging
import sys
import tokenize
from typing import TYPE_CHECKING, Any

import netshell

if TYPE_CHECKING:
    import argparse

EXAMPLES = """\
examples:
  netsh                                   the prompt, with a live reactor
  netsh --ipython                         the same names in IPython
  netsh -c 'await sleep(0.1); print("done")'
                                          run code headless
  netsh run demo.py --port 8000           run a script (a saved session too); sys.argv is
                                          ['demo.py', '--port', '8000']
  netsh run --exit --settle 2 demo.py     stop when the script ends, even with listeners open
  echo 'print(1)' | netsh run -           a script from stdin
  netsh run --transcript replay.jsonl demo.py
                                          record a transcript of the run
  netsh diff session.jsonl replay.jsonl   where a replay differs from the session
  netsh kernel install --user             the Jupyter kernel (then: jupyter console
                                          --kernel netshell)
  netsh serve echo                        one of echo, discard, chargen, daytime, qotd
                                          (echo on port 7007 unless --port says otherwise)
  netsh serve http ./site                 static files over HTTP/1.1 on port 8000, as
                                          python -m http.server
  netsh serve ftp ./site --user ann:secret --writable
  netsh serve irc --oper admin:secret
                                          FTP on port 2121 (anonymous and read-only
                                          without --user; --tls for FTPS)

exit codes: 0 success, 1 the script raised, 2 usage error, 130 SIGINT, 143 SIGTERM
(netsh serve exits 0 on Ctrl-C, as python -m http.server)
"""


def build_parser() -> argparse.ArgumentParser:
    import argparse

    parser = argparse.ArgumentParser(
        prog="netsh",
        description="netshell: an interactive network shell on an event-driven core.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"netsh {netshell.__version__}")
    parser.add_argument("-c", dest="code", metavar="CODE",
                        help="run CODE headless (top-level await works) and exit")
    parser.add_argument("--ipython", action="store_true",
                        help="use IPython's terminal (autoawait, asyncio loop) for the prompt")
    # The same options are accepted before a subcommand and after it; after it they must not
    # overwrite what came before with their defaults, hence SUPPRESS there.
    def common(target: argparse.ArgumentParser, defaults: bool) -> None:
        keep: dict[str, Any] = {} if defaults else {"default": argparse.SUPPRESS}
        target.add_argument("--log-level", metavar="LEVEL",
                            help="show log records at LEVEL and above (default WARNING)",
                            **({"default": None} if defaults else keep))
        target.add_argument("--quiet", "-q", action="store_true",
                            help="errors only: no status lines, log level ERROR", **keep)
        target.add_argument("--uvloop", action="store_true", help="run the reactor on uvloop",
                            **keep)

    common(parser, defaults=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a script headless",
                         description="Run a script (or a saved session) on a fresh reactor.",
                         epilog="example: netsh run --exit demo.py --verbose")
    common(run, defaults=False)
    run.add_argument("file", metavar="FILE", help="the script; - reads it from stdin")
    run.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                     help="arguments for the script (its sys.argv[1:])")
    run.add_argument("--settle", type=float, default=5.0, metavar="SECONDS",
                     help="after each cell, wait at most this long for its Deferreds and "
                          "connections (default 5)")
    run.add_argument("--grace", type=float, default=5.0, metavar="SECONDS",
                     help="at shutdown, time connections get to finish (default 5)")
    run.add_argument("--exit", action="store_true", dest="exit_when_done",
                     help="stop when the script ends, even if listeners are open")
    run.add_argument("--keep-going", action="store_true",
                     help="when a cell raises, print the error and run the next cell, as "
                          "the prompt does (the exit status is still 1)")
    run.add_argument("--transcript", metavar="OUT.jsonl",
                     help="write a transcript of the run (the prompt's format)")
    run.add_argument("--verbose", action="store_true",
                     help="show errors with every frame (default: a common mistake on one "
                          "line, other errors with the script's own frames only)")
    run.add_argument("--watch-blocking", action="store_true",
                     help="say on stderr when a callback blocks the reactor 0.25 s or more: "
                          "for how long, and the function and line (as the prompt does)")

    serve = sub.add_parser("serve", help="serve one protocol until Ctrl-C",
                           description="Serve one protocol until Ctrl-C or SIGTERM.",
                           epilog="examples: netsh serve echo --port 7007; "
                                  "netsh serve http ./site --port 8000")
    from netshell.app.runner import SERVICES

    common(serve, defaults=False)

    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("directory", nargs="?", metavar="DIR",
                       help="http and ftp: the directory to serve (default: the current one)")
    serve.add_argument("--port", type=_port, default=None,
                       help="port (default: http 8000, ftp 2121, irc 6667, smtp 2525, "
                            "pop3 1110, imap 1143, echo 7007, discard 9009, daytime 13013, "
                            "qotd 17017, chargen 19019; 0 picks any free one)")
    serve.add_argument("--interface", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1)")
    serve.add_argument("--grace", type=float, default=5.0, metavar="SECONDS",
                       help="at shutdown, time connections get to finish (default 5)")
    ftp = serve.add_argument_group("ftp")
    ftp.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD",
                     help="ftp, pop3, imap: a user who may log in (repeat for more); ftp "
                          "with none: anonymous logins only")
    ftp.add_argument("--writable", action="store_true",
                     help="users may upload, rename and delete (default: read-only)")
    ftp.add_argument("--tls", action="store_true",
                     help="ftp: FTPS, AUTH TLS required before login; irc: TLS from the "
                          "first byte; smtp: STARTTLS offered; pop3, imap: STLS/STARTTLS "
                          "required before login; a throwaway certificate (its fingerprint "
                          "printed) unless --cert and --key")
    ftp.add_argument("--cert", metavar="PEM", help="with --tls: the certificate (and chain)")
    ftp.add_argument("--key", metavar="PEM", help="with --tls: its private key")
    mail = serve.add_argument_group("smtp, pop3, imap")
    mail.add_argument("--maildir", metavar="DIR",
                      help="the mail: smtp delivers into DIR/<recipient's local part>, pop3 "
                           "and imap serve DIR/<user> (each a Maildir, made when missing)")
    irc = serve.add_argument_group("irc")
    irc.add_argument("--name", default=None,
                     help="the server's name, the source of its replies (default irc.local)")
    irc.add_argument("--password", default=None, help="the password PASS must give")
    irc.add_argument("--oper", action="append", default=[], metavar="NAME:PASSWORD",
                     help="who may become an IRC operator with OPER (repeat for more)")
    irc.add_argument("--account", action="append", default=[], metavar="NAME:PASSWORD",
                     help="an account clients log in to with SASL PLAIN (repeat for more)")

    kernel = sub.add_parser("kernel", help="install or remove the Jupyter kernel",
                            description="Install (or remove) the netshell Jupyter kernelspec: "
                                        "ipykernel with the netshell extension loaded.",
                            epilog="example: netsh kernel install --user; then "
                                   "jupyter console --kernel netshell")
    kernel.add_argument("action", choices=("install", "uninstall"))
    where = kernel.add_mutually_exclusive_group()
    where.add_argument("--user", action="store_true",
                       help="for this user only (the default)")
    where.add_argument("--sys-prefix", action="store_true",
                       help="into this Python's prefix (a virtualenv or conda env)")
    where.add_argument("--prefix", metavar="DIR", help="into DIR/share/jupyter/kernels")
    kernel.add_argument("--name", default=None,
                        help="the kernelspec's name (default netshell)")
    kernel.add_argument("--display-name", default=None, metavar="TEXT",
                        help="the name Jupyter shows (default 'Netshell (Python 3)')")

    diff = sub.add_parser("diff", help="compare two transcripts",
                          description="Show where two transcripts differ, ignoring times, "
                                      "ports and Deferred numbers. Exit 0 when they agree.",
                          epilog="example: netsh diff session.jsonl replay.jsonl")
    diff.add_argument("a", metavar="SESSION.jsonl")
    diff.add_argument("b", metavar="REPLAY.jsonl")
    return parser


def _kernel(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        from netshell.kernel import kernelspec
    except ImportError as e:  # pragma: no cover - kernelspec imports nothing at module level
        parser.error(str(e))
    if args.prefix is not None and not args.prefix.strip():
        parser.error("--prefix needs a directory (it was empty)")
    prefix = sys.prefix if args.sys_prefix else args.prefix
    user = not prefix  # --user, and the default
    name = args.name or kernelspec.DEFAULT_NAME
    try:
        if args.action == "install":
            where = kernelspec.install(
                name, args.display_name or kernelspec.DEFAULT_DISPLAY_NAME, user=user,
                prefix=prefix)
            print(f"Installed kernelspec {name} in {where}")
            print(f"Start it with: jupyter console --kernel {name} (or pick "
                  f"{args.display_name or kernelspec.DEFAULT_DISPLAY_NAME!r} in Jupyter)")
        else:
            if args.display_name:
                parser.error("--display-name is for `netsh kernel install`")
            where = kernelspec.uninstall(name, user=user, prefix=prefix)
            print(f"Removed kernelspec {name} from {where}")
    except ImportError as e:
        print(f"netsh kernel: {e.name or e} is not installed; "
              "install it with: pip install 'netshell[jupyter]'", file=sys.stderr)
        return 1
    except (LookupError, ValueError, OSError) as e:
        print(f"netsh kernel: {e}", file=sys.stderr)
        return 1
    return 0


def _port(text: str) -> int:
    import argparse

    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, not {port}")
    return port


def _level(name: str | None, quiet: bool) -> int:
    if quiet:
        return logging.ERROR
    if name is None:
        return logging.WARNING
    level = logging.getLevelName(name.upper())
    if not isinstance(level, int):
        raise SystemExit(f"netsh: unknown log level {name!r}")
    return level


def _headless_logging(level: int, verbose: bool = False) -> None:
    from netshell.shell.tracebacks import ShortFormatter

    # An error logged with its exception (in a protocol's callback, say) is shown as the
    # prompt shows it: without netshell's and asyncio's frames, unless --verbose.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(ShortFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s",
                                        verbose=lambda: verbose))
    logging.basicConfig(level=level, handlers=[handler])


def main(argv: list[str] | None = None) -> int:
    """Run ``netsh`` with ``argv`` (default: the process's arguments); return the exit code."""
    if not (sys.argv[1:] if argv is None else argv):
        return _prompt(logging.WARNING, None)  # the defaults of every option below
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if (extra and len(extra) == 1 and not extra[0].startswith("-")
            and args.command == "serve" and args.directory is None):
        # `netsh serve http --port 8000 DIR`: argparse takes the optional DIR together with
        # the service, before the options, and leaves it over; python -m http.server's
        # users write it last.
        args.directory = extra.pop()
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    level = _level(args.log_level, args.quiet)
    uvloop = True if args.uvloop else None
    if args.command == "diff":
        return _diff(args.a, args.b)
    if args.command == "kernel":
        return _kernel(parser, args)
    if args.command in ("run", "serve") or args.code is not None:
        from netshell.app.runner import (
            FTPOptions,
            IRCOptions,
            MailOptions,
            RunOptions,
            run_source,
            serve,
        )

        _headless_logging(level, bool(getattr(args, "verbose", False)))
        if args.command == "serve":
            if args.directory is not None and args.service not in ("http", "ftp"):
                parser.error("only `netsh serve http` and `netsh serve ftp` take a directory")
            if args.writable and args.service != "ftp":
                parser.error("--writable is for `netsh serve ftp` only")
            if args.user and args.service not in ("ftp", "pop3", "imap"):
                parser.error("--user is for `netsh serve ftp`, `pop3` and `imap`")
            if args.maildir is not None and args.service not in ("smtp", "pop3", "imap"):
                parser.error("--maildir is for `netsh serve smtp`, `pop3` and `imap`")
            if args.service in ("smtp", "pop3", "imap") and args.maildir is None:
                parser.error(f"`netsh serve {args.service}` needs --maildir DIR")
            if args.service in ("pop3", "imap") and not args.user:
                parser.error(f"`netsh serve {args.service}` needs a --user NAME:PASSWORD")
            irc_flags = [name for name, on in (
                ("--name", args.name is not None), ("--password", args.password is not None),
                ("--oper", args.oper), ("--account", args.account)) if on]
            if irc_flags and args.service != "irc":
                parser.error(f"{irc_flags[0]} is for `netsh serve irc` only")
            tls_flags = [name for name, on in (
                ("--tls", args.tls), ("--cert", args.cert), ("--key", args.key)) if on]
            if tls_flags and args.service not in ("ftp", "irc", "smtp", "pop3", "imap"):
                parser.error(f"{tls_flags[0]} is for `netsh serve ftp`, `irc`, `smtp`, `pop3` "
                             "and `imap`")
            if (args.cert or args.key) and not args.tls:
                parser.error("--cert and --key go with --tls")
            ftp_options = FTPOptions(users=args.user, writable=args.writable, tls=args.tls,
                                     cert=args.cert, key=args.key)
            irc_options = IRCOptions(name=args.name, password=args.password, opers=args.oper,
                                     accounts=args.account, tls=args.tls, cert=args.cert,
                                     key=args.key)
            mail_options = MailOptions(maildir=args.maildir, users=args.user, tls=args.tls,
                                       cert=args.cert, key=args.key)
            return serve(args.service, args.port, args.interface,
                         RunOptions(grace=args.grace, quiet=args.quiet), args.directory,
                         use_uvloop=uvloop, ftp_options=ftp_options, irc_options=irc_options,
                         mail_options=mail_options)
        if args.command is None:
            return run_source(args.code, "<string>", ["-c"], RunOptions(exit_when_done=True,
                                                                         quiet=args.quiet),
                              use_uvloop=uvloop)
        return _run(parser, args, uvloop)
    if args.ipython:
        if args.uvloop:
            parser.error("--uvloop does not apply to --ipython: IPython's asyncio loop is used")
        from netshell.shell.ipython import run_ipython

        return run_ipython(log_level=level)
    return _prompt(level, uvloop)


def _prompt(level: int, uvloop: bool | None) -> int:
    from netshell.shell.prompt import run_prompt

    return run_prompt(log_level=level, use_uvloop=uvloop)


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, uvloop: bool | None) -> int:
    from netshell.app.runner import RunOptions, run_source

    # As Python reads a script: a coding cookie or a BOM says the encoding, else UTF-8.
    try:
        if args.file == "-":
            data = sys.stdin.buffer.read()
            encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
            source, filename = data.decode(encoding), "<stdin>"
        else:
            with tokenize.open(args.file) as f:
                source = f.read()
            filename = args.file
    except OSError as e:
        parser.error(f"cannot read {args.file}: {e.strerror}")
    except (SyntaxError, UnicodeDecodeError, LookupError) as e:
        parser.error(f"cannot read {args.file}: {e}")
    transcript = None
    if args.transcript:
        try:
            transcript = open(args.transcript, "w", encoding="utf-8")  # noqa: SIM115
        except OSError as e:
            parser.error(f"cannot write {args.transcript}: {e.strerror}")
        from netshell.shell.session import header

        transcript.write(header("run"))
    options = RunOptions(settle=args.settle, grace=args.grace,
                         exit_when_done=args.exit_when_done, transcript=transcript,
                         quiet=args.quiet, keep_going=args.keep_going, verbose=args.verbose,
                         watch_blocking=args.watch_blocking)
    try:
        return run_source(source, filename, [args.file, *args.args], options, use_uvloop=uvloop)
    finally:
        if transcript is not None:
            transcript.close()


def _diff(a: str, b: str) -> int:
    from netshell.shell import session

    try:
        lines = session.diff(session.load(a), session.load(b), names=(a, b))
    except (OSError, ValueError) as e:
        print(f"netsh diff: {e}", file=sys.stderr)
        return 2
    for line in lines:
        print(line)
    if not lines:
        print(f"{a} and {b} agree")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
