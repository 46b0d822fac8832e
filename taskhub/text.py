"""Text that must be valid UTF-8 to be shown or sent as JSON, whatever the file system gave us."""

from __future__ import annotations


def printable(text: str) -> str:
    """`text` as valid UTF-8: a file name that is not (kept by Python as lone surrogates) shows its
    odd bytes as \\xNN instead of making the whole answer impossible to encode."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that did not come from a byte
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
