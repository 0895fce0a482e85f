"""Finger, step 10: one finger service behind finger, the web and IRC.

    netsh run scripts/examples/finger/10_everything.py [--interface 127.0.0.1]
        [--port 7979] [--http-port 8079] [--timeout 60] [--irc HOST:PORT]
        [--nick fingerbot] [--channel '#finger'] [--db FILE]

Steps 8 and 9 together: one ``FingerService`` over the database, and three front ends
that share it, each configured from the command line (``netsh run`` hands the script
its arguments in ``sys.argv``). A finger client gets ``--timeout`` seconds to send its
query. Ctrl-C or SIGTERM stops it cleanly: no new connections, the finger clients that
have not asked yet let go at once, the queries under way answered, the bot gone from
IRC, the database pool closed, exit status 130 (143 for SIGTERM).
"""

import argparse
import html
import logging
from urllib.parse import quote

from netshell import Factory, reactor, succeed
from netshell.db import ConnectionPool
from protocols import http, irc
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

    def connection_made(self, transport):
        super().connection_made(transport)
        # A client that never sends its query does not hold a connection for ever.
        self.timer = reactor.call_later(self.factory.timeout, transport.close)

    def connection_lost(self, reason):
        if self.timer.active():
            self.timer.cancel()

    def stop_gracefully(self):
        # The server is stopping: a connection still waiting for its query closes now,
        # one whose answer is on its way gets it first.
        if not self.answering:
            self.transport.close()

    def line_received(self, line):
        if self.answering:
            return  # one query per connection (RFC 1288): the rest is ignored
        self.answering = True
        self.timer.cancel()
        d = self.factory.service.answer(line.decode("ascii", "replace"))
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

    def __init__(self, service, timeout):
        self.service = service
        self.timeout = timeout


class FingerService:
    """What the front ends share: the users, and the answer to a finger query."""

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


def finger_bot(service, nick, channel):
    """The IRC front end: a bot that answers ``!finger QUERY`` in ``channel``, and
    ``finger QUERY`` said to it in private, with the lines a finger client would get."""
    bot = irc.Bot(nick, [channel])

    @bot.command("finger")
    async def finger(ctx):
        return "\n".join(await service.answer(ctx.rest))

    return bot


def web_app(service):
    """The HTTP front end: ``/`` lists the users, ``/LOGIN`` shows one."""
    app = http.App()

    @app.route("/")
    async def index(request):
        items = "".join(
            f'<li><a href="/{quote(login)}">{html.escape(login)}</a>: {html.escape(name)}</li>'
            for login, (name, _) in await service.get_users())
        return page("Users", f"<ul>{items}</ul>")

    @app.route("/{login}")
    async def user(request):
        login = request.params["login"]
        found = await service.get_user(login)
        if found is None:
            raise http.HTTPError(404, f"no such user: {login}")
        name, plan = found
        return page(login, f"<p>{html.escape(name)}</p><p>Plan: {html.escape(plan)}</p>")

    return app


def page(title, body):
    title = html.escape(title)
    text = f"<!doctype html><title>{title}</title><h1>{title}</h1>{body}\n"
    return http.Response(text.encode(), 200, {"Content-Type": "text/html; charset=utf-8"})


def address(text):
    host, _, port = text.rpartition(":")
    return host or "127.0.0.1", int(port)


parser = argparse.ArgumentParser(prog="10_everything.py")
parser.add_argument("--interface", default="127.0.0.1", help="where finger and HTTP listen")
parser.add_argument("--port", type=int, default=7979)
parser.add_argument("--http-port", type=int, default=8079)
parser.add_argument("--timeout", type=float, default=60.0,
                    help="seconds a finger client has to send its query")
parser.add_argument("--irc", type=address, metavar="HOST:PORT",
                    help="the IRC server to join (default: start one of our own)")
parser.add_argument("--nick", default="fingerbot")
parser.add_argument("--channel", default="#finger")
parser.add_argument("--db", default="finger.sqlite3")
args = parser.parse_args()

pool = ConnectionPool("sqlite3", args.db)
await pool.run_interaction(create_users)
service = FingerService(pool)
factory = FingerFactory(service, args.timeout)
listener = reactor.listen_tcp(args.port, factory, interface=args.interface)
print(f"finger server on {listener.address}", flush=True)
web = http.serve(web_app(service), port=args.http_port, interface=args.interface)
print(f"web server on {web.address}", flush=True)
if args.irc is None:
    irc_server = irc.serve()
    print(f"IRC server on {irc_server.address}", flush=True)
    args.irc = ("127.0.0.1", irc_server.port)
bot = finger_bot(service, args.nick, args.channel)
await bot.start(*args.irc)
# Ctrl-C or SIGTERM: netsh run stops the listeners, closes the bot's connection at once
# (the script's own), gives the finger and web queries under way time to finish, and
# then runs the shutdown hooks: the pool closes once nothing can ask it anything.
reactor.on_shutdown(pool.close)
print(f"{args.nick} in {args.channel} on {args.irc[0]}:{args.irc[1]}", flush=True)
