"""The studio without a browser: its safety (token, loopback, Host), the values it sends to
the object, the Teach functions on a real dataset folder, and the link to the object
surviving a restart of the simulated piece (a real ``lanthorn run --sim --serial`` over a
pty) and saying who holds the port.
"""
import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest

pytest.importorskip("aiohttp")
from aiohttp import ClientSession, WSServerHandshakeError, web
from aiohttp.test_utils import make_mocked_request

from lanthorn.device.storage import dataset
from lanthorn.errors import UserError
from lanthorn.host.studio import teach
from lanthorn.host.studio.link import DeviceLink
from lanthorn.host.studio.server import STUDIO, Studio, console_value, guard, make_app

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "device" / "models" / "temperament.lanthorn"
TOKEN = "t0k3n-for-the-test"


def _studio(tmp_path) -> Studio:
    link = DeviceLink("/dev/null-no-such-port")  # never started: "connecting"
    return Studio(link, tmp_path / "data", tmp_path / "models", TOKEN)


class Server:
    """make_app served by aiohttp on real sockets, in a thread, on the given addresses."""

    def __init__(self, app, hosts):
        self.app, self.hosts, self.ports = app, hosts, {}
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.runner = web.AppRunner(self.app)
        self.loop.run_until_complete(self.runner.setup())
        for host in self.hosts:
            site = web.TCPSite(self.runner, host, 0)
            self.loop.run_until_complete(site.start())
            self.ports[host] = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self.loop.run_forever()

    def __enter__(self):
        self.thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def _get(url, headers=None):
    async with ClientSession() as s:
        async with s.get(url, headers=headers or {}) as r:
            return r.status, await r.text()


def _listening_addresses(port: int) -> set[str]:
    """The local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp{,6}),
    read rather than probed: the tests send nothing to any address outside 127.0.0.0/8."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            local, state = row.split()[1], row.split()[3]
            addr, p = local.split(":")
            if state == "0A" and int(p, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(addr)
                if width == 8:
                    found.add(socket.inet_ntop(socket.AF_INET, raw[::-1]))
                else:
                    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                    found.add(socket.inet_ntop(socket.AF_INET6, words))
    return found


# ----------------------------------------------------------------------------- safety

def test_requests_without_the_token_are_refused(tmp_path):
    with Server(make_app(_studio(tmp_path)), ["127.0.0.1"]) as srv:
        base = f"http://127.0.0.1:{srv.ports['127.0.0.1']}"

        async def check():
            for path in ("/", "/static/studio.js", "/static/vendor/uPlot.iife.min.js",
                         "/api/state", "/report?name=x"):
                status, text = await _get(base + path)
                assert status == 403, path
                assert "token" in text
                status, _ = await _get(base + path + ("&" if "?" in path else "?") + "token=wrong")
                assert status == 403, path
            status, _ = await _get(base + "/api/state", {"X-Lanthorn-Token": TOKEN[:-1]})
            assert status == 403
            async with ClientSession() as s:  # the live feed too
                with pytest.raises(WSServerHandshakeError) as exc:
                    await s.ws_connect(base + "/api/live")
                assert exc.value.status == 403
                async with s.post(base + "/api/set", json={"name": "brightness", "value": 1}) as r:
                    assert r.status == 403
            # with it: the page (token inside for its own requests), the files, the API
            status, text = await _get(base + f"/?token={TOKEN}")
            assert status == 200 and f'content="{TOKEN}"' in text
            status, _ = await _get(base + f"/static/studio.js?token={TOKEN}")
            assert status == 200
            status, text = await _get(base + "/api/state", {"X-Lanthorn-Token": TOKEN})
            assert status == 200 and json.loads(text)["data"]["link"]["state"] == "connecting"
            # a page on another name that resolves here (DNS rebinding) is refused too
            status, text = await _get(base + f"/?token={TOKEN}", {"Host": "evil.example:80"})
            assert status == 403 and "Host" in text

        asyncio.run(check())


def test_requests_from_other_addresses_are_refused(tmp_path):
    """The guard every request passes, in aiohttp's own request pipeline, for a request whose
    peer is not this computer (192.0.2.7): 403 even with the right token and Host. (No
    packet is sent to a non-loopback address: the workplace allows traffic only on loopback.)"""
    studio = _studio(tmp_path)

    async def handler(request):
        return web.Response(text="ok")

    for peer, allowed in ((("192.0.2.7", 5555), False), (("10.1.2.3", 80), False),
                          (("::ffff:192.0.2.7", 1), False), (("127.0.0.1", 5555), True),
                          (("::1", 5555), True)):
        request = make_mocked_request("GET", f"/?token={TOKEN}", headers={"Host": "127.0.0.1:1"},
                                      app={STUDIO: studio},
                                      transport=mock.Mock(get_extra_info=lambda k, d=None, p=peer:
                                                          p if k == "peername" else d))
        if allowed:
            assert asyncio.run(guard(request, handler)).text == "ok", peer
        else:
            with pytest.raises(web.HTTPForbidden) as exc:
                asyncio.run(guard(request, handler))
            assert "only answers this computer" in exc.value.text, peer


def test_studio_listens_on_loopback_only(tmp_path):
    """`lanthorn studio` itself: its port answers on 127.0.0.1, and its only listening
    socket is bound to 127.0.0.1 (not 0.0.0.0 or ::), so no other address can reach it."""
    proc = subprocess.Popen([sys.executable, "-m", "lanthorn", "studio", "--port",
                             str(tmp_path / "no-such-port"), "--no-browser", "--data",
                             str(tmp_path / "d")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
        port = int(url.split(":")[2].split("/")[0])
        token = url.split("token=")[1]
        for _ in range(100):  # the page says why there is no object
            status, text = asyncio.run(_get(url.split("?")[0] + "api/state",
                                            {"X-Lanthorn-Token": token}))
            link = json.loads(text)["data"]["link"]
            if link["state"] != "connecting":
                break
            time.sleep(0.1)
        assert status == 200 and link["state"] == "lost" and "no-such-port" in link["detail"]
        assert _listening_addresses(port) == {"127.0.0.1"}
    finally:
        proc.terminate()
        proc.wait(10)


def test_console_value_never_starts_a_second_command():
    assert console_value(True) == "on" and console_value(False) == "off"
    assert console_value(35) == "35" and console_value(0.5) == "0.5"
    assert json.loads(console_value(["a b", "c"])) == ["a b", "c"]
    for bad in ("40\nunlock 1234", "x\r", "a\x00b", ["one", "two\nsave"], {"a": 1}, None, " "):
        with pytest.raises(UserError):
            console_value(bad)


# ----------------------------------------------------------------------------- teach

def _dataset(tmp_path) -> Path:
    data = tmp_path / "data"
    dataset.create_dataset(data)
    dataset.add_source(data, dataset.Source("alice", author="Alice", consent="signed form"))
    rng = np.random.default_rng(0)
    for i, label in enumerate(("tap", "hold", "tap")):
        dataset.write_recording(data, "alice", f"take-{i}", rng.random((60, 14)),
                                ["nobody"] * 20 + [label] * 40)
    return data


def test_sessions_list_play_relabel_delete_keep_the_dataset_consistent(tmp_path):
    data = _dataset(tmp_path)
    rows = teach.list_sessions(data)
    assert [(r["session"], r["label"]) for r in rows] == [("take-0", "tap"), ("take-1", "hold"),
                                                          ("take-2", "tap")]
    assert rows[0]["provenance"]["consent"] == "signed form" and rows[0]["seconds"] == 2.4
    plot = teach.session_plot(data, "alice", "take-1")
    assert len(plot["rows"]) == 60 and len(plot["rows"][0]) == 14 and plot["labels"][-1] == "hold"
    with pytest.raises(dataset.DataError):
        teach.session_plot(data, "alice", "../manifest")

    dataset.relabel_session(data, "alice", "take-1", "palm", old="hold")
    ds = dataset.load_dataset(data)  # still a valid dataset
    labels = {r.session: [ds.labels[i] for i in r.labels] for r in ds.recordings}
    assert labels["take-1"] == ["nobody"] * 20 + ["palm"] * 40
    assert labels["take-0"] == ["nobody"] * 20 + ["tap"] * 40  # the others untouched

    dataset.delete_session(data, "alice", "take-0")
    assert [r["session"] for r in teach.list_sessions(data)] == ["take-1", "take-2"]
    with pytest.raises(dataset.DataError):
        dataset.delete_session(data, "alice", "take-0")

    assert dataset.add_label(data, "wave")[-1] == "wave"
    with pytest.raises(dataset.DataError):
        dataset.add_label(data, "wave")
    dataset.relabel_session(data, "alice", "take-2", "wave", old="tap")
    assert teach.list_sessions(data)[-1]["label"] == "wave"


def test_a_take_goes_into_a_new_dataset_with_its_provenance(tmp_path):
    data = tmp_path / "fresh"
    done = {"rate_hz": 25.0, "channels": list(dataset.CHANNELS)}
    rows = np.full((25, 14), 0.25).tolist()
    saved = teach.save_take(data, "wave", rows, done, "/dev/ttyACM0", "Bo", "verbal")
    summary = teach.dataset_summary(data)
    assert summary["labels"][-1] == "wave"  # the default labels plus the new gesture
    src = summary["sources"]["studio"]
    assert src["author"] == "Bo" and src["consent"] == "verbal" and "ttyACM0" in src["device"]
    second = teach.save_take(data, "wave", np.full((25, 14), 0.3).tolist(), done, "/dev/ttyACM0")
    assert second["session"] != saved["session"]
    assert len(teach.list_sessions(data)) == 2
    with pytest.raises(UserError, match="no label 'swirl'"):
        teach.save_take(data, "swirl", rows, done, "/dev/ttyACM0")
    with pytest.raises(UserError, match="channels"):
        teach.save_take(data, "wave", [[0.0]], {"rate_hz": 25.0, "channels": ["x"]}, "p")


def test_quality_flags_are_the_cards_failed_gates(tmp_path):
    """The studio flags what the model card's quality gates say (the ones push shows)."""
    from lanthorn.device.engine.bundle import read_bundle, write_bundle
    b = read_bundle(SHIPPED)
    b.card = dict(b.card, quality={"gates": [
        {"name": "classes", "ok": True, "message": "all 9 labels have training examples"},
        {"name": "chance", "ok": False, "message": "held-out test accuracy 12.0% is near chance"}]})
    write_bundle(b, tmp_path / "m.lanthorn")
    assert teach.quality_flags(tmp_path / "m.lanthorn") == ["held-out test accuracy 12.0% is near chance"]
    b.card = {k: v for k, v in b.card.items() if k != "quality"}
    write_bundle(b, tmp_path / "old.lanthorn")
    assert "no quality figures" in teach.quality_flags(tmp_path / "old.lanthorn")[0]
    (tmp_path / "bad.lanthorn").write_bytes(b"not a bundle")
    rows = {m["name"]: m for m in teach.list_models(tmp_path)}
    assert rows["m"]["flags"] and rows["bad"]["flags"][0].startswith("not a usable bundle")


# ----------------------------------------------------------------------------- link

def _wait(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_link_survives_a_restart_and_names_who_holds_the_port(tmp_path):
    from lanthorn.host.studio.sim import SimPiece
    sim = SimPiece(tmp_path / "object").start()
    events = []
    link = DeviceLink(sim.port, on_event=events.append, describe="the simulated piece")
    try:
        link.start()
        _wait(lambda: link.connected, 90, "the first connection")
        _wait(lambda: any(e["type"] == "watch" for e in events), 10, "watch samples")
        sample = next(e for e in events if e["type"] == "watch")["data"]
        assert len(sample["leds"]) == 24 * 6 and set(sample["oled"]) >= {"text", "mood", "on"}
        assert link.call("set brightness 20")["value"] == 20
        # while the studio holds the port, nobody else can open it, and is told who does
        other = DeviceLink(sim.port)
        assert not other._open()
        assert other.state["state"] == "lost" and "in use by lanthorn studio" in other.state["detail"]
        assert "retrying" in other.state["detail"]

        seen = len(events)
        sim.kill()  # a power cut: the piece is started again, as systemd would
        states = lambda: [e["state"] for e in events[seen:] if e["type"] == "link"]  # noqa: E731
        _wait(lambda: "lost" in states(), 20, "the loss to be noticed (a link event)")
        _wait(lambda: states()[-1] == "connected", 90, "the reconnection")
        assert "restarted" in link.state["detail"] and link.restarts == 1
        assert link.call("get brightness")["value"] == 60  # not saved: back to its default
    finally:
        link.stop()
        sim.stop()


# ----------------------------------------------------------------------------- Voice

VOICE_ROUTES = [("get", "/api/voice", None), ("post", "/api/voice/weight", {"source": "hard", "weight": 2}),
                ("post", "/api/voice/train", {"epochs": 1}), ("post", "/api/voice/push", {"name": "x"})]


async def _call(base, method, path, payload=None, token=TOKEN):
    headers = {"X-Lanthorn-Token": token} if token else {}
    async with ClientSession() as s:
        async with s.request(method, base + path, json=payload, headers=headers) as r:
            return r.status, (await r.json() if r.content_type == "application/json"
                              else await r.text())


def _voice_studio(tmp_path, corpus):
    link = DeviceLink("/dev/null-no-such-port")
    return Studio(link, tmp_path / "data", tmp_path / "models", TOKEN, voice=corpus)


def test_voice_view_lists_sources_and_its_sliders_write_the_manifest(tmp_path):
    from voice_helpers import two_source_corpus

    from lanthorn.quantize.voice_corpus import MANIFEST, import_text, read_manifest, summarize
    corpus = two_source_corpus(tmp_path / "voice", hard_weight=1.0)
    (tmp_path / "more.txt").write_text("la lune encore\n")
    import_text(corpus, "soft", tmp_path / "more.txt")  # an import record the sliders must keep
    with Server(make_app(_voice_studio(tmp_path, corpus)), ["127.0.0.1"]) as srv:
        base = f"http://127.0.0.1:{srv.ports['127.0.0.1']}"

        async def check():
            for method, path, payload in VOICE_ROUTES:  # the guard covers the new routes
                assert (await _call(base, method, path, payload, token=None))[0] == 403, path
                assert (await _call(base, method, path, payload, token="wrong"))[0] == 403, path
            assert read_manifest(corpus)["hard"].weight == 1.0  # nothing was written

            status, r = await _call(base, "get", "/api/voice")
            assert status == 200 and r["ok"]
            want = summarize(corpus)["sources"]
            for name in ("soft", "hard"):
                got = r["data"]["sources"][name]
                for k in ("author", "licence", "consent", "chars", "weight", "share_effective"):
                    assert got[k] == want[name][k], (name, k)
            assert r["data"]["sources"]["soft"]["share_effective"] > 0.5  # more characters

            status, r = await _call(base, "post", "/api/voice/weight",
                                    {"source": "hard", "weight": 0.25})
            assert status == 200 and r["data"]["sources"]["hard"]["weight"] == 0.25
            sources = read_manifest(corpus)
            assert sources["hard"].weight == 0.25 and sources["soft"].weight == 1.0
            assert len(sources["soft"].imports) == 1  # the rest of the manifest as it was
            info = summarize(corpus)["sources"]
            assert r["data"]["sources"]["hard"]["share_effective"] == info["hard"]["share_effective"]
            assert info["hard"]["share_effective"] < want["hard"]["share_effective"]

            before = (corpus / MANIFEST).read_bytes()
            for payload, words in (({"source": "hard", "weight": -1}, "between 0 and 100"),
                                   ({"source": "hard", "weight": 1e9}, "between 0 and 100"),
                                   ({"source": "hard", "weight": float("nan")}, "between 0 and 100"),
                                   ({"source": "hard", "weight": "lots"}, "must be a number"),
                                   ({"source": "hard", "weight": None}, "must be a number"),
                                   ({"source": "nobody", "weight": 1}, "no source 'nobody'"),
                                   ({"source": "../x", "weight": 1}, "source name")):
                status, r = await _call(base, "post", "/api/voice/weight", payload)
                assert status == 400 and not r["ok"], payload
                assert words in r["error"] and "\n" not in r["error"], r["error"]
            assert (corpus / MANIFEST).read_bytes() == before  # a refused weight writes nothing

        asyncio.run(check())


def test_voice_view_without_a_corpus_says_how_to_start_one(tmp_path):
    with Server(make_app(_voice_studio(tmp_path, None)), ["127.0.0.1"]) as srv:
        base = f"http://127.0.0.1:{srv.ports['127.0.0.1']}"

        async def check():
            status, r = await _call(base, "get", "/api/voice")
            assert status == 200 and r["data"]["exists"] is False and "--voice" in r["data"]["hint"]
            for path, payload in (("/api/voice/weight", {"source": "a", "weight": 1}),
                                  ("/api/voice/train", {})):
                status, r = await _call(base, "post", path, payload)
                assert status == 400 and "--voice DIR" in r["error"]
            status, r = await _call(base, "post", "/api/voice/push", {"name": "voice-x"})
            assert status == 400 and "no voice 'voice-x'" in r["error"]

        asyncio.run(check())


def test_voice_folder_defaults_to_voice_beside_the_data(tmp_path):
    from lanthorn.commands.studio import voice_folder
    data = tmp_path / "lanthorn-data"
    assert voice_folder(None, data) is None
    (tmp_path / "voice").mkdir()
    assert voice_folder(None, data) == (tmp_path / "voice").resolve()
    assert voice_folder("elsewhere", data) == Path("elsewhere")


def test_voice_retrain_quantizes_and_returns_sample_phrases_per_mood(tmp_path):
    from voice_helpers import two_source_corpus

    from lanthorn.device.piece.voice import load_voice
    corpus = two_source_corpus(tmp_path / "voice", hard_weight=0.5, moods=True)
    studio = _voice_studio(tmp_path, corpus)
    with Server(make_app(studio), ["127.0.0.1"]) as srv:
        base = f"http://127.0.0.1:{srv.ports['127.0.0.1']}"

        async def check():
            status, r = await _call(base, "post", "/api/voice/train", {"epochs": 0})
            assert status == 400 and "between 1 and 500" in r["error"]
            status, r = await _call(base, "post", "/api/voice/train", {"epochs": 2})
            assert status == 200, r
            job_id, _name = r["data"]["job"], r["data"]["name"]  # both are in the answer
            status, again = await _call(base, "post", "/api/voice/train", {"epochs": 2})
            assert status == 400 and "busy" in again["error"]  # one long job at a time
            for _ in range(1200):
                job = studio.jobs[job_id]
                if job["state"] != "running":
                    break
                await asyncio.sleep(0.1)
            assert job["state"] == "done", job
            status, r = await _call(base, "get", "/api/voice")
            return job, r["data"]["last"]

        job, last = asyncio.run(check())
    assert last["name"] == job["result"]["name"]
    bundle = tmp_path / "models" / "voice" / f"{last['name']}.lanthorn"
    assert bundle.is_file() and not (tmp_path / "models" / f"{last['name']}.lanthorn").exists()
    voice = load_voice(bundle)
    assert set(last["samples"]) == set(voice.spec.moods)
    for mood, rows in last["samples"].items():
        assert rows and [r["seed"] for r in rows] == list(range(len(rows)))
        for r in rows[:2]:  # the int8 voice says exactly these words for that mood and seed
            from lanthorn.device.piece.params import ParamStore
            p = ParamStore().snapshot()
            assert voice.speak(mood, r["seed"], p).text == r["text"]
    panel = last["panel"]   # the tasting panel, shown after each retrain
    assert panel["constrained"] and panel["corpus_words"] == 1.0
    assert set(panel["per_mood"]) == set(voice.spec.moods) and 0 <= panel["mood"] <= 1


def test_a_bad_port_is_told_in_plain_words_not_a_raw_errno(tmp_path):
    """`lanthorn studio --port /dev/ttyACM9` with nothing there: the link's state (shown in
    the page's header pill) says what is wrong and what to try, once."""
    link = DeviceLink(str(tmp_path / "ttyACM9"), describe="the object")
    assert not link._open()
    detail = link.state["detail"]
    assert link.state["state"] == "lost"
    assert detail.startswith(f"no serial port {tmp_path / 'ttyACM9'}: is the object plugged in")
    assert "Errno" not in detail and "retrying every second" in detail


def test_the_page_never_shows_moods_as_object_object_or_a_broken_oled():
    """The Tune view writes a moods value as the console does (gesture_moods showed as
    [object Object]); the OLED pictures start as a dark 'not connected' display, and go
    back to it when the link is lost, instead of a broken image."""
    js = (Path(__file__).resolve().parents[1] / "host" / "studio" / "static" / "studio.js").read_text()
    assert 'else if (p.type === "moods") input.value = moodsText(value);' in js
    node = subprocess.run(["node", "-e", js.split("// a moods value")[1].split("\n// what the OLED")[0]
                           .split("\n", 2)[2] + '\nconsole.log(moodsText({wave: {shy: 1}, knock: '
                           '{shy: 0.7, curious: 0.3}}))'], capture_output=True, text=True) \
        if _has_node() else None
    if node is not None:
        assert node.stdout.strip() == "wave=shy; knock=shy:0.7,curious:0.3", node.stderr
        from lanthorn.device.piece.params import parse_moods
        assert parse_moods(node.stdout.strip()) == {"wave": {"shy": 1.0},
                                                     "knock": {"shy": 0.7, "curious": 0.3}}
    assert '$("#oled").src = OLED_OFF;' in js and "not connected" in js


def _has_node() -> bool:
    import shutil
    return shutil.which("node") is not None


def test_the_link_line_names_the_model_the_object_runs_after_a_push():
    """The header's link line named the model at connection time and kept it after a push."""
    events = []
    link = DeviceLink("/dev/null-not-opened", on_event=events.append, describe="the object")
    link.model = {"name": "temperament"}
    link._set_state("connected", "connected on the object (temperament)")
    link.model_changed({"name": "wave", "sha256": "ab"})
    assert link.state["detail"] == "connected on the object (wave)"
    assert events[-1]["type"] == "link" and events[-1]["model"]["name"] == "wave"
    link._set_state("lost", "unplugged")
    link.model_changed({"name": "wave2"})            # not connected: the line says why not
    assert link.state["detail"] == "unplugged" and link.model["name"] == "wave2"
