"""Text a user sent, made safe for each place it reaches.

People paste anything: NUL bytes, lone UTF-16 surrogates from a broken client, line breaks in a subject,
a megabyte of keys. Each sink has its own rule, kept here so there is one answer per sink:
- PostgreSQL text and jsonb hold neither NUL nor lone surrogates (keys included): `storable`;
- an e-mail header, a chat header or a log line is one line: `one_line`;
- an e-mail header also holds no RFC 2047 encoded word the email package would decode: `mail_header`;
- a timeline entry or a refusal has a bounded size: `clipped`.
Pure functions, used by the workflow and by the activities alike.
"""

from __future__ import annotations

import re
from typing import Any

REPLACEMENT = "\ufffd"

# NUL, and the surrogate code points Python keeps when JSON carries a lone "\ud800".
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Everything a mail header, a terminal or a chat header would take as a line break or a control.
_LINE_BREAKS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]+")
_SPACES = re.compile(r"\s{2,}")
# Where an RFC 2047 encoded word starts; U+2060 WORD JOINER between the two shows nothing.
_ENCODED_WORD = "=?"
_ENCODED_WORD_BROKEN = "=\u2060?"


def storable(value: Any) -> Any:
    """`value` with NUL and lone surrogates replaced by U+FFFD in every string, dict key included."""
    if isinstance(value, str):
        return _UNSTORABLE.sub(REPLACEMENT, value) if _UNSTORABLE.search(value) else value
    if isinstance(value, dict):
        return {storable(str(k)): storable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [storable(v) for v in value]
    return value


def is_storable(text: str) -> bool:
    return _UNSTORABLE.search(text) is None


def one_line(text: str, limit: int | None = None) -> str:
    """`text` on one line: every line break, separator and control character becomes one space."""
    flat = _SPACES.sub(" ", _LINE_BREAKS.sub(" ", text)).strip()
    return clipped(flat, limit) if limit else flat


def mail_header(text: str, limit: int | None = None) -> str:
    """`text` on one line with every `=?` broken: Python's email package decodes an encoded word in a
    value it is given, and before 3.11.10 writes a CR or LF so decoded out as a new header line."""
    return one_line(text, limit).replace(_ENCODED_WORD, _ENCODED_WORD_BROKEN)


def clipped(text: str, limit: int) -> str:
    """At most `limit` characters, with an ellipsis where it was cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def shown(text: str, limit: int = 80) -> str:
    """A name a user chose (an action, a field), for a message: what cannot be printed escaped (a NUL
    reads \\x00), and bounded."""
    head = text[: limit + 1]
    return clipped("".join(c if c.isprintable() else ascii(c)[1:-1] for c in head), limit)
