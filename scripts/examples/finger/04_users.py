"""Finger, step 4: answer from a dict of users, by the rules of RFC 1288.

    netsh run scripts/examples/finger/04_users.py [--port 7979]

A query is one line (RFC 1288, section 2.3): empty, it asks for the list of users;
``alice`` asks about one; ``/W`` in front of either asks for more ("verbose");
``alice@elsewhere`` asks this server to finger another host on the asker's behalf.
That is forwarding, which the RFC lets a server refuse (section 3.2.1): this one
refuses it, with a line that says so. A query that is not printable ASCII, or longer
than ``MAX_LENGTH``, gets a one-line refusal; every answer is followed by the end of
the connection.
"""

import argparse

from netshell import Factory, reactor
from protocols.basic import LineReceiver

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
        self.send_answer(self.factory.answer(line.decode("ascii", "replace")))

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
        """``(name, plan)``, or None when there is no such user."""
        return self.users.get(login)

    def get_users(self):
        """The list of ``(login, (name, plan))``, by login."""
        return sorted(self.users.items())

    def answer(self, query):
        """The lines that answer a query."""
        try:
            verbose, login = parse_query(query)
        except ValueError as e:
            return [f"Bad query: {e}"]
        if "@" in login:
            return ["Finger forwarding service denied"]
        if not login:
            return list_users(self.get_users(), verbose)
        return describe_user(login, self.get_user(login), verbose)


parser = argparse.ArgumentParser(prog="04_users.py")
parser.add_argument("--port", type=int, default=7979)
args = parser.parse_args()

listener = reactor.listen_tcp(args.port, FingerFactory(USERS))
print(f"finger server on {listener.address}", flush=True)
