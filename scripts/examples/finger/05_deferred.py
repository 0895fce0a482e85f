"""Finger, step 5: the lookup answers with a Deferred.

    netsh run scripts/examples/finger/05_deferred.py [--port 7979]

The same answers as step 4, but ``get_user`` and ``get_users`` now return Deferreds,
and the protocol sends the answer when the Deferred fires. Here they fire at once
(``succeed``); the point is that nothing else has to change when a lookup starts to
take time: a file, a thread, a database (the next steps). A lookup that fails is
logged, and the client gets one line that says so instead of a silent hang-up.
"""

import argparse
import logging

from netshell import Factory, reactor, succeed
from protocols.basic import LineReceiver

log = logging.getLogger("finger")

USERS = {
    "alice": ("Alice Liddell", "Follow the white rabbit."),
    "bob": ("Bob Hacker", "Fix the printer, again."),
}


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

    def __init__(self, users):
        self.users = users

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


parser = argparse.ArgumentParser(prog="05_deferred.py")
parser.add_argument("--port", type=int, default=7979)
args = parser.parse_args()

listener = reactor.listen_tcp(args.port, FingerFactory(USERS))
print(f"finger server on {listener.address}", flush=True)
