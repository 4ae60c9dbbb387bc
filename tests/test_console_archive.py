"""The console's read-back commands (``model get``, ``preset show``, ``settings saved``,
``version``, ``lockfile``, ``rejected``, ``access PIN``) over a real pseudo-terminal with
real pyserial, against the fake app: one OK/ERR per line, the bytes sent back are the bytes
pushed, a locked object keeps its artwork to itself without the PIN, and a reader that
goes away mid-``model get`` leaves the console answering."""
import base64
import hashlib
import json
import time

import test_console
from console_fakes import make_fake_bundle
from test_console import Terminal, _push_over, wait_for

from lanthorn.device.console.console_archive import ACCESS_S
from lanthorn.device.console.push_wire import FrameDecoder

rig = test_console.rig  # the console fixture, found by pytest under this name


def _get(term, line="model get"):
    """Send a ``model get`` line; (file bytes from the CHUNK lines, the final line)."""
    out = term.answer(line)
    assert out[0].startswith("NOTE sending"), out[:2]
    frames = {}
    dec = FrameDecoder()
    for text in out[1:-1]:
        assert text.startswith("CHUNK "), text[:40]
        for kind, seq, payload in dec.feed(base64.b64decode(text[6:])):
            assert kind == "frame"
            frames[seq] = payload
    return b"".join(frames[i] for i in range(len(frames))), out[-1]


def test_model_get_sends_back_the_pushed_bytes_and_its_previous(rig):
    term, app, server, link = rig
    first, second = make_fake_bundle("first", 3000), make_fake_bundle("second", 9000)
    for data in (first, second):
        assert _push_over(term, data)[0].startswith("OK installed")
    got, final = _get(term)
    assert got == second
    assert final.startswith("OK sent model current") and hashlib.sha256(second).hexdigest() in final
    got, final = _get(term, "model get previous")
    assert got == first and final.startswith("OK sent model previous")
    # no voice was pushed and the fake app runs none: one clear line
    out = term.answer("model get voice")
    assert len(out) == 1 and out[0].startswith("ERR no voice file is running")
    assert term.answer("model get sideways") == [
        "ERR model get 'sideways': say 'model get [previous] [voice]'"]


def test_model_get_in_json_mode_is_chunk_events_then_one_answer(rig):
    term, app, server, link = rig
    data = make_fake_bundle("jsonny", 5000)
    assert _push_over(term, data)[0].startswith("OK installed")
    assert json.loads(term.answer("mode json")[-1])["ok"]
    term.send(b"model get\n")
    events, dec, got = [], FrameDecoder(), {}
    while True:
        obj = json.loads(term.line())
        if "ok" in obj:
            break
        events.append(obj["event"])
        if obj["event"] == "chunk":
            for _, seq, payload in dec.feed(base64.b64decode(obj["data"])):
                got[seq] = payload
    assert obj["ok"] and obj["cmd"] == "model get"
    assert events[0] == "sending" and set(events[1:]) == {"chunk"}
    assert b"".join(got[i] for i in range(len(got))) == data
    assert obj["data"]["size"] == len(data) and obj["data"]["chunks"] == len(got)


def test_presets_and_saved_settings_read_back_without_loading(rig):
    term, app, server, link = rig
    assert term.answer("set brightness 30")[-1].startswith("OK")
    assert term.answer("preset save dim") == ["OK preset dim saved"]
    assert term.answer("set brightness 90")[-1].startswith("OK")
    out = term.answer("preset show dim")
    assert out[-1].startswith("OK preset dim:") and "brightness = 30" in " ".join(out)
    assert app.params.get("brightness") == 90  # shown, not loaded
    assert term.answer("preset show nope")[-1].startswith("ERR no preset named 'nope'")
    assert term.answer("settings saved")[-1] == "OK 0 saved start-up values"
    assert term.answer("save") == ["OK saved as the start-up values"]
    assert term.answer("set brightness 50")[-1].startswith("OK")
    out = term.answer("settings saved")
    assert "brightness = 90" in " ".join(out) and out[-1].startswith("OK")


def test_a_locked_object_keeps_its_artwork_without_the_pin(rig):
    term, app, server, link = rig
    data = make_fake_bundle("secret", 2000)
    assert _push_over(term, data)[0].startswith("OK installed")
    assert term.answer("preset save show") == ["OK preset show saved"]
    assert term.answer("lock 4711")[-1].startswith("OK locked")
    for line in ("model get", "model get previous voice", "preset show show", "settings saved"):
        out = term.answer(line)
        assert len(out) == 1 and out[0].startswith("ERR locked: the model, voice, presets"), out
    # what a technician needs stays readable
    assert term.answer("version")[-1].startswith("OK lanthorn ")
    assert term.answer("status")[-1] == "OK"
    out = term.answer("lockfile")
    assert out[-1].startswith("OK locked") and "state: locked" in out
    stored = json.loads(app.storage.lock_path.read_text())
    assert not any(stored["hash"] in x or stored["salt"] in x for x in out)
    assert term.answer("rejected")[-1] == "OK 0 file(s) set aside"
    # a wrong PIN is slowed down like unlock; the right one opens reading, not changing
    assert term.answer("access 0000")[-1].startswith("ERR wrong PIN")
    app.clock.advance(2)
    assert term.answer("access 4711")[-1].startswith("OK this connection may read")
    assert _get(term)[0] == data
    assert "OK preset show: " in term.answer("preset show show")[-1] + ": "
    assert term.answer("set brightness 20")[-1].startswith("ERR locked")
    assert term.answer("access end")[-1].startswith("OK access ended")
    assert term.answer("model get")[-1].startswith("ERR locked")
    assert term.answer("access 4711")[-1].startswith("OK")
    assert term.answer("mode text") == ["OK mode text"]  # a client's last word ends it too
    assert term.answer("settings saved")[-1].startswith("ERR locked")
    assert term.answer("access 4711")[-1].startswith("OK")
    app.clock.advance(ACCESS_S + 1)  # and it runs out
    assert term.answer("model get")[-1].startswith("ERR locked")


def test_rejected_notes_are_listed(rig):
    term, app, server, link = rig
    bad = app.storage.root / "settings.json"
    bad.write_text("{not json")
    app.storage.load_settings()  # the piece sets the bad file aside at start
    out = term.answer("rejected")
    assert out[-1] == "OK 1 file(s) set aside"
    assert "settings.json" in out[0] and "unreadable" in out[0]


def test_a_reader_gone_mid_model_get_leaves_the_console_answering(rig):
    term, app, server, link = rig
    data = make_fake_bundle("big", 900_000)
    term.ser.close()
    app.storage.current_path.write_bytes(data)  # as a push would have left it
    app.model, app.source, _ = app.storage.load_model()
    term = Terminal(link.host)
    term.send(b"model get\n")
    assert term.line().startswith("NOTE sending")
    assert term.line().startswith("CHUNK ")
    term.ser.close()  # the cable is pulled: nobody reads the rest
    wait_for(lambda: server.stream is None, "the server to give up on the transfer", 30.0)
    term = Terminal(link.host)
    end = time.monotonic() + 10
    term.send(b"status\n")
    while True:  # what was in the cable before it was pulled comes first
        line = term.line()
        if line.startswith(("OK", "ERR")):
            break
        assert time.monotonic() < end
    assert line == "OK" and server.handled >= 2
    assert term.answer("version")[-1].startswith("OK lanthorn")
    term.ser.close()
