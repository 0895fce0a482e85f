"""Finger, step 6: the users come from a file, read again every few seconds.

    netsh run scripts/examples/finger/06_users_file.py [--port 7979] [--users FILE] [--every S]

The users are in a text file, one ``login:name:plan`` a line (``users.txt`` next to this
script unless ``--users`` says otherwise). A timed call reads it again every ``--every``
seconds (default 5) and schedules the next reading, so an edit shows up without a
restart; each time the file has changed it prints how many users there are. A file that cannot
be read keeps the users read last (the error is logged, once), and a line that is not
``login:name:plan`` is skipped with a warning.
"""

import argparse
import logging
from pathlib import Path

from netshell import Factory, reactor, succeed
from protocols.basic import LineReceiver

log = logging.getLogger("finger")


def parse_users(text, path):
    """The users of a ``login:name:plan`` file's text, as ``{login: (name, plan)}``."""
    users = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        login, *rest = line.split(":", 2)
        if len(rest) != 2 or not login.strip():
            log.warning("%s, line %d: not login:name:plan, skipped", path, number)
            continue
        users[login.strip()] = (rest[0].strip(), rest[1].strip())
    return users


def parse_query(query):
    """``(verbose, name)`` of a query line; ValueError unless it is printable ASCII."""
    if not (query.isascii() and query.isprintable()):
        raise ValueError("a finger query is printable ASCII")
    words = query.split()
    verbose = bool(words) and words[0].upper() == "/W"
    return verbose, " ".join(words[1:] if verbose else words)


def describe_user(login, user, verbose):
    """The answer about one user: ``user`` is ``(name, plan)``, or None."""
    if user is None:
        return [f"No such user: {login}"]
    name, plan = user
    return [f"{login}: {name}", f"  Plan: {plan}"] if verbose else [f"{login}: {name}"]


def list_users(users, verbose):
    """The answer to an empty query: every user, in the order given."""
    return [line for login, user in users for line in describe_user(login, user, verbose)]


class FingerProtocol(LineReceiver):
    MAX_LENGTH = 256  # bytes in a query: a user name is far shorter
    answering = False

    def line_received(self, line):
        if self.answering:
            return  # one query per connection (RFC 1288): the rest is ignored
        self.answering = True
        d = self.factory.answer(line.decode("ascii", "replace"))
        d.add_errback(self.lookup_failed)
        d.add_callback(self.send_answer)

    def lookup_failed(self, failure):
        log.error("finger lookup failed:\n%s", failure.get_traceback())
        return ["Sorry: the lookup failed"]

    def line_length_exceeded(self, buffer):
        self.send_answer([f"Query too long: at most {self.MAX_LENGTH} bytes"])

    def send_answer(self, lines):
        for text in lines:
            self.send_line(text.encode("ascii", "replace"))
        self.transport.close()


class FingerFactory(Factory):
    protocol = FingerProtocol

    def __init__(self, path, every):
        self.path = path
        self.every = every
        self.users = {}
        self.text = None  # the file as read last
        self.error = None  # why it could not be read last time, if it could not
        self.reload()

    def reload(self):
        """Read the file again, then ask to be called again in ``every`` seconds."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as e:
            if str(e) != self.error:  # said once, not every few seconds
                self.error = str(e)
                log.error("cannot read the users (the %d read last stay): %s", len(self.users), e)
        else:
            self.error = None
            if text != self.text:
                self.text = text
                self.users = parse_users(text, self.path)
                print(f"{len(self.users)} users from {self.path}", flush=True)
        self.timer = reactor.call_later(self.every, self.reload)

    def get_user(self, login):
        """A Deferred of ``(name, plan)``, or of None when there is no such user."""
        return succeed(self.users.get(login))

    def get_users(self):
        """A Deferred of the list of ``(login, (name, plan))``, by login."""
        return succeed(sorted(self.users.items()))

    def answer(self, query):
        """A Deferred of the lines that answer a query."""
        try:
            verbose, login = parse_query(query)
        except ValueError as e:
            return succeed([f"Bad query: {e}"])
        if "@" in login:
            return succeed(["Finger forwarding service denied"])
        if not login:
            return self.get_users().add_callback(list_users, verbose)
        return self.get_user(login).add_callback(
            lambda user: describe_user(login, user, verbose))


parser = argparse.ArgumentParser(prog="06_users_file.py")
parser.add_argument("--port", type=int, default=7979)
parser.add_argument("--users", type=Path, default=Path(__file__).with_name("users.txt"))
parser.add_argument("--every", type=float, default=5.0)
args = parser.parse_args()

listener = reactor.listen_tcp(args.port, FingerFactory(args.users, args.every))
print(f"finger server on {listener.address}", flush=True)
