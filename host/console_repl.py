"""The console client's terminal side: answers rendered for people, Tab completion from
the device's own tables, live ``watch`` panels and the read-eval-print loop.

``lanthorn console PORT`` (``lanthorn.commands.console``) opens a
:class:`lanthorn.host.console_client.ConsoleClient` and hands it here. Between two typed
lines the port is released, so a ``lanthorn push`` or ``record`` from another terminal can
use it; the next line takes it back.
"""
from __future__ import annotations

import os
import select
import sys
import time
from pathlib import Path

from lanthorn.host.console_client import ConsoleClient, ConsoleError
from lanthorn.host.termplot import WatchPanel

HISTORY_FILE = Path(os.environ.get("LANTHORN_HISTORY", Path.home() / ".lanthorn_console_history"))


# ----------------------------------------------------------------------------- rendering

def render(line: str, ans: dict, commands: list[dict]) -> list[str]:
    """A json answer as the lines a person wants to read."""
    if not ans.get("ok"):
        return [f"ERR {ans.get('error')}"]
    cmd, data, msg = ans.get("cmd"), ans.get("data"), ans.get("message") or ""
    out: list[str] = []
    if cmd == "help" and isinstance(data, dict):
        words = line.split()[1:]
        want = " ".join(words).lower()
        rows = [c for c in data["commands"] if not want or c["name"] == want
                or c["name"].startswith(want + " ")]
        if not rows:
            return [f"ERR no command {want!r} (type 'help' for the list)"]
        width = max(len(f"{c['name']} {c['args']}") for c in rows)
        out += [f"{(c['name'] + ' ' + c['args']).strip():<{width}}  {c['help']}"
                + ("  [locked: refused]" if c["writes"] and want else "") for c in rows]
        if not want:
            out.append("quit                        leave the console (the object keeps running)")
        return out
    if cmd == "list" and isinstance(data, dict):
        rows = [(p["name"], _fmt(p["value"]) + (f" {p['unit']}" if p.get("unit") else ""),
                 p["description"]) for p in data["params"]]
        w0 = max(len(r[0]) for r in rows)
        w1 = min(max(len(r[1]) for r in rows), 36)
        return [f"{a:<{w0}}  {b[:36]:<{w1}}  {c}" for a, b, c in rows]
    if cmd in ("status", "model info") and isinstance(data, dict):
        # "sha256" on the wire is the internal digest, shown under that name beside the
        # file's sha256 (what sha256sum prints)
        out = [f"{k:<22} {_fmt(v)}" for k, v in data.items() if k != "sha256"
               or "internal_digest" not in data]
        return out + ([f"OK {msg}"] if msg else [])
    if cmd == "preset list" and isinstance(data, dict):
        return data["presets"] or ["(no presets saved)"]
    return [f"OK {msg}".rstrip()]


def _fmt(v) -> str:
    if isinstance(v, dict):
        return "  ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    if isinstance(v, list):
        return " | ".join(_fmt(x) for x in v) if v else "-"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


# ----------------------------------------------------------------------------- completion

class Completer:
    """Readline completion from the device's own tables: commands, then parameter names,
    then values (choices, on/off), preset names."""

    def __init__(self, commands: list[dict], params: list[dict], presets=lambda: []):
        self.commands = commands
        self.params = {p["name"]: p for p in params}
        self.presets = presets
        self._matches: list[str] = []

    def candidates(self, before: str, word: str) -> list[str]:
        words = before.split()
        names = [c["name"] for c in self.commands] + ["quit"]
        if not words:
            heads = sorted({n.split()[0] for n in names})
            return [h for h in heads if h.startswith(word)]
        head = words[0].lower()
        if len(words) == 1 and any(n.startswith(head + " ") for n in names):
            return [n.split(" ", 1)[1] for n in names
                    if n.startswith(head + " ") and n.split(" ", 1)[1].startswith(word)]
        if head in ("get", "set", "reset") and len(words) == 1:
            extra = ["all"] if head == "reset" else []
            return [n for n in list(self.params) + extra if n.startswith(word)]
        if head == "set" and len(words) == 2 and words[1] in self.params:
            p = self.params[words[1]]
            values = p.get("choices") or (["on", "off"] if p["type"] == "bool" else [])
            return [v for v in values if v.startswith(word)]
        if head == "help" and len(words) == 1:
            return sorted({n.split()[0] for n in names if n.split()[0].startswith(word)})
        if head == "preset" and len(words) == 2 and words[1] in ("load", "delete"):
            return [n for n in self.presets() if n.startswith(word)]
        if head == "mode" and len(words) == 1:
            return [m for m in ("text", "json") if m.startswith(word)]
        return []

    def complete(self, text: str, state: int):
        if state == 0:
            import readline
            buf = readline.get_line_buffer()
            before = buf[:readline.get_begidx()]
            self._matches = [m + " " for m in self.candidates(before, text)]
        return self._matches[state] if state < len(self._matches) else None


# ----------------------------------------------------------------------------- watch

def watch(client: ConsoleClient, line: str, seconds: float | None, interactive: bool) -> None:
    """Stream ``watch`` as a live panel until Enter (interactive), Ctrl-C or ``seconds``."""
    ans = client.request(line)
    if not ans.get("ok"):
        print(f"ERR {ans.get('error')}")
        return
    panel = WatchPanel()
    out = sys.stdout
    if interactive:
        print("(press Enter to stop)")
    end = time.monotonic() + seconds if seconds is not None else None
    last_draw = 0.0
    try:
        while end is None or time.monotonic() < end:
            if interactive and select.select([sys.stdin], [], [], 0)[0]:
                sys.stdin.readline()
                break
            ev_line = client.read_line(0.1)
            if ev_line is None:
                continue
            ev = _json_event(ev_line)
            if ev and ev.get("event") == "watch":
                panel.update(ev.get("data") or {})
                now = time.monotonic()
                if now - last_draw >= 0.05:  # at most 20 redraws a second
                    panel.draw(out.write if out.isatty() else (lambda s: None))
                    out.flush()
                    last_draw = now
    except KeyboardInterrupt:
        pass
    if not out.isatty():  # piped: one final snapshot instead of animation
        print("\n".join(panel.render()))
    ans = client.request("stop")
    print(f"OK {ans.get('message')}" if ans.get("ok") else f"ERR {ans.get('error')}")


def _json_event(line: str):
    import json
    try:
        obj = json.loads(line)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


# ----------------------------------------------------------------------------- main

def run_line(client: ConsoleClient, line: str, commands, seconds=None, interactive=False) -> bool:
    """Run one typed line; returns False when the answer was ERR."""
    head = line.split()[0].lower()
    if head == "watch":
        watch(client, line, seconds, interactive)
        return True
    if head == "push":
        print("ERR use 'lanthorn push BUNDLE --port PORT' to send a model")
        return False
    if head == "mode":
        print("ERR the console client always talks json to the device; answers are shown as text")
        return False
    timeout = None
    if head == "record":
        try:
            timeout = float(line.split()[2]) + 10.0
        except (IndexError, ValueError):
            pass

    def on_event(ev):
        if ev.get("event") == "frames":
            print(".", end="", flush=True)

    ans = client.request(line, on_event=on_event, timeout=timeout)
    if head == "record":
        print()
    for out_line in render(line, ans, commands):
        print(out_line)
    return bool(ans.get("ok"))


def run_lines(client: ConsoleClient, lines: list[str], commands, seconds=None) -> bool:
    """Run each given line (``-c``) in turn; False when any answer was ERR."""
    ok = True
    for line in lines:
        if line.strip():
            ok = run_line(client, line.strip(), commands, seconds) and ok
    return ok


def repl(client: ConsoleClient, commands, port: str) -> None:
    """Read lines from the terminal (or a pipe) until quit or end of input."""
    interactive = sys.stdin.isatty()
    if interactive:
        _setup_readline(client, commands)
        print(f"connected to {port}; 'help' lists commands, Tab completes, 'quit' leaves")
    while True:
        # between commands the port is free: a 'lanthorn push' or 'record' from another
        # terminal can use it; the next command takes it back and renegotiates json mode
        client.release()
        try:
            line = input("lanthorn> " if interactive else "")
        except EOFError:
            break
        except KeyboardInterrupt:
            print()
            continue
        line = line.strip()
        if not line:
            continue
        if line.lower() in ("quit", "exit"):
            break
        try:
            run_line(client, line, commands, interactive=interactive)
        except ConsoleError as exc:
            print(f"ERR {exc}")
        sys.stdout.flush()
    if interactive:
        _save_history()


def _setup_readline(client: ConsoleClient, commands) -> None:
    try:
        import readline
    except ImportError:  # e.g. Windows without pyreadline: no completion, still usable
        return
    params = client.params()

    def presets():
        try:
            return client.call("preset list")["presets"]
        except ConsoleError:
            return []

    completer = Completer(commands, params, presets)
    readline.set_completer(completer.complete)
    readline.set_completer_delims(" ")
    readline.parse_and_bind("tab: complete")
    try:
        readline.read_history_file(HISTORY_FILE)
    except OSError:
        pass
    readline.set_history_length(1000)


def _save_history() -> None:
    try:
        import readline
        readline.write_history_file(HISTORY_FILE)
    except (ImportError, OSError):
        pass
