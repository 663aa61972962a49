"""One exception type for every user-facing error: a one-line reason that names the file,
line, field or parameter at fault. The command line prints it and exits non-zero."""
from __future__ import annotations


class SSUIError(ValueError):
    """A clear, user-facing error (bad input, bad configuration, failed backend)."""


def where(path, line: int | None = None, field: str | None = None) -> str:
    """Format a location prefix like ``data.jsonl:12: field 'query'``."""
    s = str(path)
    if line is not None:
        s += f":{line}"
    if field:
        s += f": field '{field}'"
    return s


class TransportError(SSUIError):
    """A backend could not deliver an answer: network or HTTP failure, timeout, or a garbled
    response body, after the backend's own retries. A judge counts only this as "unscored" (the
    item is retried on the next run); any other SSUIError is a bug in the input or settings and
    stops the run."""
