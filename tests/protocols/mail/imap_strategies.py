"""hypothesis strategies for the IMAP tests: commands (every command the parser knows,
with typed arguments), and the values of responses (envelopes, body structures, FETCH
items, response codes), each a value the writer can write and the parser should read
back equal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import strategies as st

from protocols.mail.imap.values import (
    SEARCH_DATE_KEYS,
    SEARCH_FLAGS_KEYS,
    SEARCH_STRING_KEYS,
    SYSTEM_FLAGS,
    Address,
    Command,
    Envelope,
    FetchItem,
    Multipart,
    SearchKey,
    Section,
    SequenceSet,
    SinglePart,
    canonical_flag,
)

# any character but NUL (IMAP strings cannot hold it) and lone surrogates; the ones
# that change how a string is written (quote, backslash, CR, LF, 8-bit, space,
# specials) come often
_CHARS = st.one_of(
    st.sampled_from(list('"\\\r\n (){}%*]&+-~é☃\U0001f600\x01\x7f')),
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
)
text = st.lists(_CHARS, max_size=20).map("".join)
nonempty_text = st.lists(_CHARS, min_size=1, max_size=20).map("".join)
_ATOM_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&'+-.:;<=>?@^_`|~"
# (an atom spelled NIL in any case reads as NIL where a list holds flags: the one
# ambiguity of the grammar, left out)
atoms = st.text(_ATOM_CHARS, min_size=1, max_size=10).filter(lambda a: a.upper() != "NIL")
tags = st.text(_ATOM_CHARS.replace("+", "") + "]", min_size=1, max_size=8)
numbers = st.integers(1, 2**32 - 1)


def _mailbox_name(name: str) -> str:
    return "INBOX" if name.upper() == "INBOX" else name


mailboxes = st.one_of(st.sampled_from(["INBOX", "inbox", "Sent", "a/b", "&", "Entwürfe"]),
                      nonempty_text).map(_mailbox_name)
flags = st.one_of(st.sampled_from([f for f in SYSTEM_FLAGS if f != "\\Recent"]),
                  atoms, atoms.map(lambda a: canonical_flag("\\" + a)))
flag_lists = st.lists(flags, max_size=4).map(tuple)

sequence_sets = st.lists(
    st.tuples(st.one_of(numbers, st.none()), st.one_of(numbers, st.none()), st.booleans()),
    min_size=1, max_size=5,
).map(lambda rs: SequenceSet(tuple((a, a if single else b) for a, b, single in rs)))

dates = st.dates(min_value=datetime(1000, 1, 1).date(), max_value=datetime(9999, 12, 31).date())
datetimes = st.builds(
    lambda d, secs, offset: datetime(d.year, d.month, d.day, tzinfo=UTC).replace(
        tzinfo=timezone(timedelta(minutes=offset))) + timedelta(seconds=secs),
    st.dates(min_value=datetime(1900, 1, 2).date(), max_value=datetime(9998, 12, 30).date()),
    st.integers(0, 86399),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
)


ascii_text = st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=20)


def _search_keys(ascii_only: bool) -> st.SearchStrategy[SearchKey]:
    strings = ascii_text if ascii_only else text
    leaves = st.one_of(
        st.sampled_from(sorted(SEARCH_FLAGS_KEYS)).map(SearchKey),
        st.tuples(st.sampled_from(sorted(SEARCH_STRING_KEYS)), strings).map(
            lambda t: SearchKey(t[0], (t[1],))),
        st.tuples(st.sampled_from(sorted(SEARCH_DATE_KEYS)), dates).map(
            lambda t: SearchKey(t[0], (t[1],))),
        st.tuples(st.sampled_from(["LARGER", "SMALLER"]), st.integers(0, 2**32 - 1)).map(
            lambda t: SearchKey(t[0], (t[1],))),
        st.tuples(st.sampled_from(["UID", "SET"]), sequence_sets).map(
            lambda t: SearchKey(t[0], (t[1],))),
        st.tuples(st.sampled_from(["KEYWORD", "UNKEYWORD"]), atoms).map(
            lambda t: SearchKey(t[0], (t[1],))),
        st.tuples(st.text("abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=10), strings).map(
            lambda t: SearchKey("HEADER", t)),
    )
    return st.recursive(leaves, lambda inner: st.one_of(
        inner.map(lambda k: SearchKey("NOT", (k,))),
        st.tuples(inner, inner).map(lambda t: SearchKey("OR", t)),
        st.lists(inner, min_size=2, max_size=4).map(lambda ks: SearchKey("AND", tuple(ks))),
    ), max_leaves=8)


search_keys = _search_keys(ascii_only=False)
ascii_search_keys = _search_keys(ascii_only=True)

header_names = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1,
                       max_size=12)
sections = st.one_of(
    st.just(Section()),
    st.builds(Section, st.lists(st.integers(1, 50), max_size=3).map(tuple),
              st.sampled_from([None, "HEADER", "TEXT"])),
    st.builds(Section, st.lists(st.integers(1, 50), min_size=1, max_size=3).map(tuple),
              st.just("MIME")),
    st.builds(Section, st.lists(st.integers(1, 50), max_size=3).map(tuple),
              st.sampled_from(["HEADER.FIELDS", "HEADER.FIELDS.NOT"]),
              st.lists(header_names, min_size=1, max_size=4).map(tuple)),
)
fetch_items = st.one_of(
    st.sampled_from(["ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER",
                     "RFC822.SIZE", "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID"]
                    ).map(FetchItem),
    st.builds(FetchItem, st.just("BODY"), sections,
              st.one_of(st.none(), st.tuples(st.integers(0, 2**32 - 1), numbers)),
              st.booleans()),
)


def commands() -> st.SearchStrategy[Command]:
    """Any command the parser knows, with arguments it gives back as they are."""
    no_args = st.sampled_from(["CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE",
                               "UNSELECT", "IDLE", "NAMESPACE", "EXPUNGE"]).map(
        lambda n: (n, (), False))
    one_mailbox = st.tuples(
        st.sampled_from(["SELECT", "EXAMINE", "CREATE", "DELETE", "SUBSCRIBE", "UNSUBSCRIBE"]),
        mailboxes).map(lambda t: (t[0], (t[1],), False))
    login = st.tuples(text, text).map(lambda t: ("LOGIN", t, False))
    authenticate = st.tuples(
        st.sampled_from(["PLAIN", "LOGIN", "XOAUTH2"]),
        st.one_of(st.none(), st.binary(max_size=20).map(
            lambda b: __import__("base64").b64encode(b).decode() or "="))
    ).map(lambda t: ("AUTHENTICATE", t, False))
    rename = st.tuples(mailboxes, mailboxes).map(lambda t: ("RENAME", t, False))
    patterns = st.one_of(st.sampled_from(["*", "%", "INBOX/%", "a*b"]), nonempty_text)
    list_ = st.tuples(st.sampled_from(["LIST", "LSUB"]), st.one_of(st.just(""), text),
                      patterns).map(lambda t: (t[0], (t[1], t[2]), False))
    status = st.tuples(mailboxes, st.lists(
        st.sampled_from(["MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN"]),
        min_size=1, max_size=5).map(tuple)).map(lambda t: ("STATUS", t, False))
    append = st.tuples(mailboxes, flag_lists, st.one_of(st.none(), datetimes),
                       st.binary(max_size=200).map(lambda b: b.replace(b"\0", b"x"))
                       ).map(lambda t: ("APPEND", t, False))
    search = st.one_of(
        st.tuples(st.none(), ascii_search_keys),
        st.tuples(st.sampled_from(["UTF-8", "US-ASCII"]), ascii_search_keys),
        st.tuples(st.just("UTF-8"), search_keys),
    )
    search_cmd = st.tuples(search, st.booleans()).map(lambda t: ("SEARCH", t[0], t[1]))
    fetch = st.tuples(sequence_sets, st.lists(fetch_items, min_size=1, max_size=5).map(tuple),
                      st.booleans()).map(lambda t: ("FETCH", t[:2], t[2]))
    store = st.tuples(sequence_sets, st.sampled_from(["", "+", "-"]), st.booleans(),
                      flag_lists, st.booleans()).map(lambda t: ("STORE", t[:4], t[4]))
    copy = st.tuples(st.sampled_from(["COPY", "MOVE"]), sequence_sets, mailboxes,
                     st.booleans()).map(lambda t: (t[0], (t[1], t[2]), t[3]))
    uid_expunge = sequence_sets.map(lambda s: ("EXPUNGE", (s,), True))
    enable = st.lists(atoms.map(str.upper), min_size=1, max_size=3).map(
        lambda caps: ("ENABLE", (tuple(caps),), False))
    id_ = st.one_of(st.none(), st.dictionaries(text, st.one_of(st.none(), text), min_size=1,
                                                max_size=4)
                    ).map(lambda d: ("ID", (d,), False))
    return st.builds(
        lambda tag, spec: Command(tag, spec[0], spec[1], spec[2]),
        tags,
        st.one_of(no_args, one_mailbox, login, authenticate, rename, list_, status, append,
                  search_cmd, fetch, store, copy, uid_expunge, enable, id_),
    )


# ---- response values

nstrings = st.one_of(st.none(), text)
addresses = st.builds(Address, nstrings, nstrings, nstrings, nstrings)
address_lists = st.one_of(st.none(), st.lists(addresses, min_size=1, max_size=3).map(tuple))
envelopes = st.builds(Envelope, nstrings, nstrings, address_lists, address_lists,
                      address_lists, address_lists, address_lists, address_lists, nstrings,
                      nstrings)
params = st.lists(st.tuples(nonempty_text, text), max_size=3).map(tuple)
dispositions = st.one_of(st.none(), st.tuples(nonempty_text, params))
languages = st.one_of(st.none(), st.lists(text, min_size=1, max_size=3).map(tuple))


def body_structures(extended: bool) -> st.SearchStrategy[Any]:
    def ext(kw: dict[str, Any]) -> dict[str, Any]:
        return kw if extended else {}

    ext_single = st.fixed_dictionaries({
        "md5": nstrings, "disposition": dispositions, "language": languages,
        "location": nstrings}) if extended else st.just({})
    sizes = st.integers(0, 2**32 - 1)
    others = st.builds(
        lambda t, sub, p, i, d, enc, size, e: SinglePart(t, sub, p, i, d, enc, size,
                                                          extended=extended, **e),
        st.sampled_from(["application", "image", "audio", "x-thing"]), nonempty_text, params,
        nstrings, nstrings, nonempty_text, sizes, ext_single)
    texts = st.builds(
        lambda sub, p, i, d, enc, size, lines, e: SinglePart(
            "text", sub, p, i, d, enc, size, lines, extended=extended, **e),
        nonempty_text, params, nstrings, nstrings, nonempty_text, sizes, sizes, ext_single)

    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        messages = st.builds(
            lambda p, i, d, enc, size, env, body, lines, e: SinglePart(
                "message", "rfc822", p, i, d, enc, size, lines, env, body,
                extended=extended, **e),
            params, nstrings, nstrings, nonempty_text, sizes, envelopes, inner, sizes,
            ext_single)
        ext_multi = st.fixed_dictionaries({
            "params": params, "disposition": dispositions, "language": languages,
            "location": nstrings}) if extended else st.just({})
        multis = st.builds(
            lambda parts, sub, e: Multipart(tuple(parts), sub, extended=extended, **e),
            st.lists(inner, min_size=1, max_size=3), nonempty_text, ext_multi)
        return st.one_of(messages, multis)

    return st.recursive(st.one_of(others, texts), extend, max_leaves=6)
