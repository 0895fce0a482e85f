"""IMAP4rev1 (RFC 3501)."""
