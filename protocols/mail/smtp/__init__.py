"""SMTP (RFC 5321 and its extensions): a sans-I/O core, a server and a client.

- :mod:`protocols.mail.smtp.core`: replies, MAIL/RCPT arguments, dot-stuffing and the DATA
  reader (closed against SMTP smuggling), the errors;
- ``serve`` (:mod:`protocols.mail.smtp.server`): an ESMTP server delivering into a Maildir
  or to a callable;
- ``send`` (:mod:`protocols.mail.smtp.client`): send one message, with STARTTLS, AUTH and
  pipelining.

The errors: ``SMTPError`` > ``SMTPTemporaryError`` (4xx), ``SMTPPermanentError`` (5xx) >
``SMTPRecipientsRefused``, ``SMTPProtocolError``, ``SMTPNotSupported``,
``SMTPConnectionClosed``, ``SMTPTimeoutError``.
"""

from protocols.mail.smtp.client import (
    SendResult,
    SMTPConnectionClosed,
    SMTPNotSupported,
    SMTPRecipientsRefused,
    SMTPTimeoutError,
    send,
)
from protocols.mail.smtp.core import (
    Reply,
    SMTPError,
    SMTPPermanentError,
    SMTPProtocolError,
    SMTPTemporaryError,
)
from protocols.mail.smtp.server import Envelope, SMTPServerFactory, serve

__all__ = [
    "Envelope",
    "Reply",
    "SMTPConnectionClosed",
    "SMTPError",
    "SMTPNotSupported",
    "SMTPPermanentError",
    "SMTPProtocolError",
    "SMTPRecipientsRefused",
    "SMTPServerFactory",
    "SMTPTemporaryError",
    "SMTPTimeoutError",
    "SendResult",
    "send",
    "serve",
]
