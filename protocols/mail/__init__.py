"""Mail: SMTP, POP3 and IMAP4 servers over one Maildir store, and their clients."""
