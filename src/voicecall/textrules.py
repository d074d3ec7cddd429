"""What free text a client may send (messages to speak, goodbyes, reasons): one rule, one type.

Refused, with a 422 naming the field, before anything reaches the call manager or the store:

* control characters (Unicode category Cc: NUL, escape, DEL, the C1 range …) other than tab,
  newline and carriage return: a NUL gave a 503 from the store (PostgreSQL cannot store it) and
  others have no business in text read aloud;
* unpaired surrogates (JSON can carry ``"\\ud800"``; no UTF-8 store can keep it);
* text that is empty or only whitespace (it would be refused after ``strip()`` anyway).

What *callers* say (a provider's ``SpeechResult`` or ``Digits``, a transcript from speech
recognition) is never refused, since nothing a caller says may be dropped: :func:`caller_text`
strips the same characters instead.

The same rule is published in the OpenAPI document as a ``pattern`` (valid ECMA-262, Python
``re`` and Rust ``regex`` syntax alike), so generated clients and schema-driven testers agree
with the server; a test checks that the pattern and :func:`check_client_text` accept exactly
the same (surrogate-free) strings.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

# Cc minus \t \n \r, written as escapes (valid in ECMA-262 and Python patterns alike)
_CONTROL = r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f"
# str.isspace() characters that are not controls: what str.strip() removes besides those
_BLANK = r"\u0009\u000a\u000d\u0020\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"

#: a string with no forbidden character and at least one that is not whitespace. Surrogates
#: are not in it: regex engines that work on Unicode scalar values (Rust's, used by
#: jsonschema-rs) refuse such a range, and a valid Unicode string has none; the server refuses
#: an unpaired one while decoding (pydantic) and :func:`problem_in` says so too.
PATTERN = f"^[^{_CONTROL}]*[^{_CONTROL}{_BLANK}][^{_CONTROL}]*$"

_ALLOWED_CONTROLS = frozenset("\t\n\r")


def problem_in(text: str) -> str | None:
    """Why ``text`` is not acceptable client text, or ``None`` if it is."""
    for i, ch in enumerate(text):
        code = ord(ch)
        if (code < 0x20 or 0x7F <= code <= 0x9F) and ch not in _ALLOWED_CONTROLS:
            return (
                f"contains the control character U+{code:04X} at position {i} "
                "(only tab, newline and carriage return are allowed)"
            )
        if 0xD800 <= code <= 0xDFFF:
            return f"contains an unpaired surrogate U+{code:04X} at position {i}"
    if not text.strip():
        return "must not be empty or only whitespace"
    return None


_STRIP = re.compile(f"[{_CONTROL}\ud800-\udfff]")


def caller_text(text: str) -> str:
    """``text`` without the characters :func:`problem_in` refuses (controls other than tab,
    newline and carriage return; unpaired surrogates): what a caller said, made storable."""
    if text.isprintable():  # the usual case: nothing to strip
        return text
    return _STRIP.sub("", text)


def check_client_text(text: str) -> str:
    """Pydantic after-validator: ``text`` unchanged, or a validation error saying why not."""
    why = problem_in(text)
    if why is not None:
        raise PydanticCustomError("client_text", why)
    return text


def text_schema(max_length: int) -> dict[str, Any]:
    """The JSON Schema of client text of up to ``max_length`` characters (for other fields
    that follow the rule: ``Annotated[str, Field(...), AfterValidator(check_client_text),
    WithJsonSchema(text_schema(n))]``)."""
    return {"type": "string", "minLength": 1, "maxLength": max_length, "pattern": PATTERN}


#: Text to speak on a call (``message``, goodbyes): at most 4000 characters.
SpokenText = Annotated[
    str,
    Field(min_length=1, max_length=4000),
    AfterValidator(check_client_text),
    WithJsonSchema(text_schema(4000)),
]

#: A short note, e.g. why a number is on the do-not-call list: at most 500 characters.
NoteText = Annotated[
    str,
    Field(min_length=1, max_length=500),
    AfterValidator(check_client_text),
    WithJsonSchema(text_schema(500)),
]

_compiled = re.compile(PATTERN)


def matches_pattern(text: str) -> bool:
    """The published pattern applied with Python's ``re`` (used by the agreement test)."""
    return _compiled.search(text) is not None
