"""Small wording helpers shared by every layer (stdlib only): messages a person reads
should say "1 session", not "1 sessions"."""


def plural(n: int, noun: str, many: str | None = None) -> str:
    """``plural(1, "session")`` → "1 session"; ``plural(3, "session")`` → "3 sessions"."""
    return f"{n} {noun if n == 1 else (many or noun + 's')}"
