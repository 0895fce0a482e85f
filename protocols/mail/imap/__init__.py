"""IMAP4rev1 (RFC 3501): a sans-I/O parser and writer, a server and a client.

The names most people need are here: ``serve`` (a server over a tree of Maildirs:
``imap.serve(root, {"alice": "pw"})``), ``connect`` (a client: ``await imap.connect(host,
user=..., password=...)``), :class:`IMAPClient`, its helpers ``search_key``,
``message_set`` and ``fetch_items``; the values it answers with (``MailboxInfo``,
``ListEntry``, ``Envelope``, ``Address``, ``SinglePart``/``Multipart``, ``SearchKey``,
``SequenceSet``, ``FetchItem``, ``Response``, ``ResponseCode``); and the errors:
``IMAPError`` > ``IMAPCommandError`` (> ``IMAPNo``, ``IMAPBad``), ``IMAPConnectionClosed``,
``IMAPTimeoutError``, ``IMAPNotSupported``, ``IMAPParseError`` (what a server answers to a
bad command). The readers are in :mod:`.parser` (``CommandReader``, ``ResponseReader``),
the writing in :mod:`.writer` (``format_command``, ``format_fetch``, ``envelope``,
``body_structure``, ``section_bytes``, ``encode_mailbox``...).

>>> message_set([3, 1, 2, 9])
SequenceSet('1:3,9')
"""

from protocols.mail.imap.client import (
    Idle,
    IMAPBad,
    IMAPClient,
    IMAPCommandError,
    IMAPConnectionClosed,
    IMAPNo,
    IMAPNotSupported,
    IMAPTimeoutError,
    MailboxInfo,
    connect,
    fetch_items,
    message_set,
    search_key,
)
from protocols.mail.imap.parser import CommandReader, ResponseReader
from protocols.mail.imap.server import serve
from protocols.mail.imap.values import (
    Address,
    BodyStructure,
    Command,
    Continuation,
    ContinuationRequest,
    Envelope,
    FetchItem,
    IMAPError,
    IMAPParseError,
    IMAPSyntaxError,
    LineTooLong,
    ListEntry,
    LiteralTooBig,
    Multipart,
    Response,
    ResponseCode,
    ResponseParseError,
    SearchKey,
    Section,
    SequenceSet,
    SinglePart,
)
from protocols.mail.imap.writer import (
    body_structure,
    decode_mailbox,
    encode_mailbox,
    envelope,
    section_bytes,
)

__all__ = [
    "Address",
    "BodyStructure",
    "Command",
    "CommandReader",
    "Continuation",
    "ContinuationRequest",
    "Envelope",
    "FetchItem",
    "IMAPBad",
    "IMAPClient",
    "IMAPCommandError",
    "IMAPConnectionClosed",
    "IMAPError",
    "IMAPNo",
    "IMAPNotSupported",
    "IMAPParseError",
    "IMAPSyntaxError",
    "IMAPTimeoutError",
    "Idle",
    "LineTooLong",
    "ListEntry",
    "LiteralTooBig",
    "MailboxInfo",
    "Multipart",
    "Response",
    "ResponseCode",
    "ResponseParseError",
    "ResponseReader",
    "SearchKey",
    "Section",
    "SequenceSet",
    "SinglePart",
    "body_structure",
    "connect",
    "decode_mailbox",
    "encode_mailbox",
    "envelope",
    "fetch_items",
    "message_set",
    "search_key",
    "section_bytes",
    "serve",
]
