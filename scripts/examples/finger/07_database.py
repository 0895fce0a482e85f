"""Finger, step 7: the users live in a database, looked up in a thread.

    netsh run scripts/examples/finger/07_database.py [--port 7979] [--db FILE]

A DB-API driver blocks: a query holds its thread until the database answers, and the
reactor's thread must never wait like that. ``netshell.db.ConnectionPool`` runs each
query in a worker thread of its own (each with its own connection, as sqlite3 wants)
and answers with a Deferred that fires back in the reactor's thread: since step 5,
a Deferred is all the protocol asks of a lookup. Now that an answer takes a while, a
client that shuts its side of the connection once its query is sent (``socat`` does,
``nc -N`` too) must not lose it: ``eof_received`` keeps the connection half-open while
an answer is on its way. The database is an SQLite file
(``finger.sqlite3`` in the current directory unless ``--db`` says otherwise); its
``users`` table is made, with two users, when it does not exist yet.
"""

import argparse
import logging

from netshell import Factory, reactor, succeed
from netshell.db import ConnectionPool
from protocols.basic import LineReceiver

log = logging.getLogger("finger")


def create_users(cursor):
    """In a worker thread: make the users table, with two users, unless it exists."""
    cursor.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'users'")
    if cursor.fetchone() is None:
        cursor.execute("CREATE TABLE users (login TEXT PRIMARY KEY, name TEXT, plan TEXT)")
        cursor.executemany("INSERT INTO users VALUES (?, ?, ?)", [
            ("alice", "Alice Liddell", "Follow the white rabbit."),
            ("bob", "Bob Hacker", "Fix the printer, again."),
        ])


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

    def eof_received(self):
        # A client may shut its side once the query is sent (socat does): keep the
        # connection half-open while the answer is on its way, so it can still go out.
        return self.answering

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

    def __init__(self, pool):
        self.pool = pool

    def get_user(self, login):
        """A Deferred of ``(name, plan)``, or of None when there is no such user."""
        d = self.pool.run_query("SELECT name, plan FROM users WHERE login = ?", (login,))
        return d.add_callback(lambda rows: rows[0] if rows else None)

    def get_users(self):
        """A Deferred of the list of ``(login, (name, plan))``, by login."""
        d = self.pool.run_query("SELECT login, name, plan FROM users ORDER BY login")
        return d.add_callback(lambda rows: [(login, (name, plan)) for login, name, plan in rows])

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


parser = argparse.ArgumentParser(prog="07_database.py")
parser.add_argument("--port", type=int, default=7979)
parser.add_argument("--db", default="finger.sqlite3")
args = parser.parse_args()

pool = ConnectionPool("sqlite3", args.db)
await pool.run_interaction(create_users)
listener = reactor.listen_tcp(args.port, FingerFactory(pool))
print(f"finger server on {listener.address}", flush=True)
