"""Writes bytes a text layer would mangle: NUL, invalid UTF-8, CRLF, no final newline."""

import os

STDOUT = b"line one\r\n\x00\xff\xfe not utf-8\n" + bytes(range(256)) + b"\nno newline at the end"
STDERR = b"to stderr\n\xc3\x28 bad utf-8 on stderr"

if __name__ == "__main__":
    os.write(1, STDOUT)
    os.write(2, STDERR)
