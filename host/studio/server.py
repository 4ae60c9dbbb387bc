"""The studio's web server (aiohttp): the page, a JSON API and one live websocket.

Safety, because a web page can drive a physical artwork:

* it listens on 127.0.0.1 only, and refuses any request whose peer is not loopback;
* every request -- the page, its files, the API, the websocket -- must carry the random
  per-session token (``?token=`` in the URL the studio opens, then an
  ``X-Lanthorn-Token`` header); without it: 403. Another page in the browser cannot read
  the token (same-origin policy), and another process cannot guess it;
* the Host header must name this server (a page on a DNS name that rebinds to 127.0.0.1
  is refused);
* one page at a time holds the object: changes from any other page are refused (409) and
  every page is told which one holds it (it can take over with a click).

The handlers are glue: device commands go through :class:`~.link.DeviceLink` (the same
console protocol as ``lanthorn console``), data and model work through :mod:`.teach`, the voice's corpus and retraining through :mod:`.voice`.
"""
from __future__ import annotations

import asyncio
import base64
import hmac
import io
import ipaddress
import json
import secrets
import time
from pathlib import Path

from aiohttp import web

from lanthorn.device.storage import dataset
from lanthorn.errors import UserError
from lanthorn.host.console_client import ConsoleError
from lanthorn.host.studio import teach
from lanthorn.host.studio import voice as voice_work
from lanthorn.host.studio.link import DeviceLink

STATIC = Path(__file__).resolve().parent / "static"
TOKEN_HEADER = "X-Lanthorn-Token"
CLIENT_HEADER = "X-Studio-Client"
#: the page's own files only: no inline script, nothing from elsewhere, not framed by others
PAGE_HEADERS = {
    "Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; script-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff"}
MAX_QUEUE = 200  # live events waiting for a slow page before old watch samples are dropped


def is_loopback(remote: str | None) -> bool:
    try:
        return ipaddress.ip_address((remote or "").split("%")[0]).is_loopback
    except ValueError:
        return False


def console_value(value) -> str:
    """A JSON value from the page as console text for ``set NAME VALUE``. Refuses line
    breaks and control characters (they would end the line and start another command)."""
    if isinstance(value, bool):
        text = "on" if value else "off"
    elif isinstance(value, list):
        if not all(isinstance(v, str) and not _controls(v) for v in value):
            raise UserError("phrases must be text without line breaks or control characters")
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, (int, float, str)):
        text = str(value)
    else:
        raise UserError(f"cannot set a parameter to {type(value).__name__}")
    if _controls(text):
        raise UserError("values may not contain line breaks or control characters")
    if not text.strip():
        raise UserError("empty value")
    return text


def _controls(text: str) -> bool:
    return any(ord(ch) < 32 or ch == "\x7f" for ch in text)


def _word(text, what: str) -> str:
    """One console word (a name, a PIN, a label) from the page: no spaces or controls."""
    if not isinstance(text, str) or not text or len(text) > 64 or _controls(text) or any(
            ch.isspace() for ch in text):
        raise UserError(f"{what} must be one word of at most 64 characters")
    return text


class Hub:
    """Live events to every open page (one queue per websocket; slow pages lose old watch
    samples, never link, job or record events)."""

    def __init__(self):
        self.clients: dict[str, dict] = {}  # id -> {"ws", "queue", "since", "agent"}
        self.holder: str | None = None
        self.last: dict[str, dict] = {}  # newest event of each type, for a page that joins

    def publish(self, ev: dict) -> None:
        if ev["type"] in ("watch", "link", "job", "oled", "control", "model"):
            self.last[ev["type"]] = ev
        for c in self.clients.values():
            q: asyncio.Queue = c["queue"]
            if q.qsize() >= MAX_QUEUE:
                if ev["type"] == "watch":
                    continue
                try:
                    q.get_nowait()
                except asyncio.QueueEmpty:
                    pass
            q.put_nowait(ev)

    def control(self) -> dict:
        h = self.clients.get(self.holder) if self.holder else None
        return {"type": "control", "holder": self.holder,
                "since": h["since"] if h else None, "agent": h["agent"] if h else None,
                "pages": len(self.clients)}


class Studio:
    """The app's state: the link to the object, the data and models folders, the jobs."""

    def __init__(self, link: DeviceLink, data: Path, models: Path, token: str,
                 train_epochs: int | None = None, voice: Path | None = None):
        self.link, self.data, self.models, self.token = link, Path(data), Path(models), token
        self.voice = Path(voice) if voice is not None else None  # the voice corpus, if any
        self.voices = self.models / "voice"  # retrained voices (apart from gesture models)
        self.voice_result: dict | None = None  # the last retrain: bundle and samples per mood
        self.train_epochs = train_epochs
        self.hub = Hub()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.jobs: dict[str, dict] = {}
        self.busy: str | None = None  # the running long job's kind (train, push, record)
        self.tasks: set[asyncio.Task] = set()  # train and push jobs running in the background
        self._oled_key = None

    # --- events from other threads
    def emit(self, ev: dict) -> None:
        """Thread-safe: hand an event to the page(s)."""
        if ev["type"] in ("watch", "frames"):
            now = ev["data"] if ev["type"] == "watch" else ev["data"].get("now")
            if now:
                self._oled(now.get("oled"))
        if ev["type"] == "link" and ev.get("model"):
            self._emit({"type": "model", "model": ev["model"]})
        self._emit(ev)

    def _emit(self, ev: dict) -> None:
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.hub.publish, ev)

    def _oled(self, oled: dict | None) -> None:
        """The display as a picture, drawn by the device's own ``render_oled`` from the
        words it was given: sent only when they change."""
        if not oled:
            return
        key = (oled.get("text"), oled.get("mood"), oled.get("footer"), oled.get("on"))
        if key == self._oled_key:
            return
        self._oled_key = key
        from lanthorn.device.piece.behaviour import render_oled
        if oled.get("on"):
            img = render_oled(oled.get("text") or "", oled.get("mood") or "", 128, 64,
                              oled.get("footer") or "")
        else:
            from PIL import Image
            img = Image.new("1", (128, 64), 0)
        buf = io.BytesIO()
        img.convert("L").save(buf, format="PNG")
        self._emit({"type": "oled", "png": "data:image/png;base64,"
                    + base64.b64encode(buf.getvalue()).decode(), **oled})

    def job_update(self, job: dict, **kw) -> None:
        job.update(kw)
        self._emit({"type": "job", "job": dict(job)})

    # --- helpers for handlers
    async def device(self, line: str, timeout: float = 30.0):
        return await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.link.call(line, timeout))

    async def blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


STUDIO = web.AppKey("studio", Studio)


# ----------------------------------------------------------------------------- middleware

@web.middleware
async def guard(request: web.Request, handler):
    """Loopback peers, this server's Host, the session token: or 403."""
    studio: Studio = request.app[STUDIO]
    if not is_loopback(request.remote):
        raise web.HTTPForbidden(text="the studio only answers this computer (127.0.0.1)\n")
    host = (request.host or "").rsplit(":", 1)[0].strip("[]").lower()
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise web.HTTPForbidden(text="wrong Host: open the studio's own 127.0.0.1 address\n")
    given = request.headers.get(TOKEN_HEADER) or request.query.get("token") or ""
    if not hmac.compare_digest(given.encode(), studio.token.encode()):
        raise web.HTTPForbidden(text="missing or wrong token: open the address "
                                     "'lanthorn studio' printed (it holds the token)\n")
    try:
        return await handler(request)
    except (UserError, ConsoleError) as exc:  # a person can act on these
        return web.json_response({"ok": False, "error": str(exc)}, status=400)
    except asyncio.TimeoutError:
        return web.json_response({"ok": False, "error": "the object did not answer in time"},
                                 status=504)


def _holder_check(request: web.Request) -> None:
    studio: Studio = request.app[STUDIO]
    me = request.headers.get(CLIENT_HEADER)
    if studio.hub.holder is not None and me != studio.hub.holder:
        raise web.HTTPConflict(text=json.dumps({
            "ok": False, "error": "another studio page holds the object; take over there "
                                  "or press 'take over' here"}), content_type="application/json")


def ok(data=None, **kw) -> web.Response:
    return web.json_response({"ok": True, "data": data, **kw})


async def body(request: web.Request) -> dict:
    try:
        obj = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise UserError("the request body must be JSON") from None
    if not isinstance(obj, dict):
        raise UserError("the request body must be a JSON object")
    return obj


# ----------------------------------------------------------------------------- pages

async def index(request: web.Request) -> web.Response:
    html = (STATIC / "index.html").read_text(encoding="utf-8")
    html = html.replace("__TOKEN__", request.app[STUDIO].token)
    return web.Response(text=html, content_type="text/html", headers=PAGE_HEADERS)


async def report_page(request: web.Request) -> web.Response:
    html = (STATIC / "report.html").read_text(encoding="utf-8")
    html = html.replace("__TOKEN__", request.app[STUDIO].token)
    return web.Response(text=html, content_type="text/html", headers=PAGE_HEADERS)


async def report_file(request: web.Request) -> web.FileResponse:
    studio: Studio = request.app[STUDIO]
    name = dataset.check_name("model", request.match_info["name"])
    file = request.match_info["file"]
    if file not in ("report.md", "report.json") and not (file.endswith(".png") and "/" not in file
                                                          and not file.startswith(".")):
        raise web.HTTPNotFound()
    path = studio.models / f"{name}-report" / file
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path)


# ----------------------------------------------------------------------------- live

async def live(request: web.Request) -> web.WebSocketResponse:
    studio: Studio = request.app[STUDIO]
    hub = studio.hub
    cid = request.query.get("client") or secrets.token_hex(4)
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    q: asyncio.Queue = asyncio.Queue()
    hub.clients[cid] = {"ws": ws, "queue": q, "since": time.time(),
                        "agent": request.headers.get("User-Agent", "")[:80]}
    if hub.holder is None:
        hub.holder = cid
    for ev in hub.last.values():
        q.put_nowait(ev)
    hub.publish(hub.control())

    async def sender():
        while True:
            ev = await q.get()
            await ws.send_str(json.dumps(ev, default=str))

    task = asyncio.create_task(sender())
    try:
        async for _ in ws:  # the page sends nothing; this waits for it to go
            pass
    finally:
        task.cancel()
        hub.clients.pop(cid, None)
        if hub.holder == cid:  # the next page in line holds the object
            hub.holder = next(iter(hub.clients), None)
        hub.publish(hub.control())
    return ws


async def take_control(request: web.Request) -> web.Response:
    hub = request.app[STUDIO].hub
    me = request.headers.get(CLIENT_HEADER)
    if me not in hub.clients:
        raise UserError("this page is not connected (reload it)")
    hub.holder = me
    hub.publish(hub.control())
    return ok(hub.control())


# ----------------------------------------------------------------------------- See / Tune

async def state(request: web.Request) -> web.Response:
    studio: Studio = request.app[STUDIO]
    out = {"link": studio.link.state, "model": studio.link.model,
           "control": studio.hub.control(), "data": teach.dataset_summary(studio.data),
           "models": await studio.blocking(teach.list_models, studio.models),
           "busy": studio.busy, "jobs": list(studio.jobs.values())[-5:]}
    if studio.link.connected:
        try:
            out["params"] = (await studio.device("list"))["params"]
            out["presets"] = (await studio.device("preset list"))["presets"]
            out["status"] = await studio.device("status")
        except ConsoleError as exc:
            out["device_error"] = str(exc)
    return ok(out)


async def set_param(request: web.Request) -> web.Response:
    _holder_check(request)
    studio: Studio = request.app[STUDIO]
    b = await body(request)
    name = _word(b.get("name"), "the parameter name")
    await studio.device(f"set {name} {console_value(b.get('value'))}")
    got = await studio.device(f"get {name}")  # what the object now really holds
    return ok(got)


async def reset_param(request: web.Request) -> web.Response:
    _holder_check(request)
    b = await body(request)
    name = _word(b.get("name") or "all", "the parameter name")
    await request.app[STUDIO].device(f"reset {name}")
    return ok()


async def save(request: web.Request) -> web.Response:
    _holder_check(request)
    await request.app[STUDIO].device("save")
    return ok()


async def preset(request: web.Request) -> web.Response:
    _holder_check(request)
    b = await body(request)
    action = b.get("action")
    if action not in ("save", "load", "delete"):
        raise UserError("preset action must be save, load or delete")
    data = await request.app[STUDIO].device(f"preset {action} {_word(b.get('name'), 'the preset name')}")
    return ok(data)


async def lock(request: web.Request) -> web.Response:
    _holder_check(request)
    b = await body(request)
    what = "unlock" if b.get("unlock") else "lock"
    await request.app[STUDIO].device(f"{what} {_word(b.get('pin'), 'the PIN')}")
    return ok({"locked": what == "lock"})


async def model_rollback(request: web.Request) -> web.Response:
    _holder_check(request)
    studio: Studio = request.app[STUDIO]
    data = await studio.device("model rollback")
    studio.link.model = await studio.device("model info")
    studio._emit({"type": "model", "model": studio.link.model})
    return ok(data)


# ----------------------------------------------------------------------------- Teach

async def sessions(request: web.Request) -> web.Response:
    studio: Studio = request.app[STUDIO]
    if not (studio.data / dataset.MANIFEST).exists():
        return ok([])
    return ok(await studio.blocking(teach.list_sessions, studio.data))


async def session_plot(request: web.Request) -> web.Response:
    studio: Studio = request.app[STUDIO]
    q = request.query
    return ok(await studio.blocking(teach.session_plot, studio.data, q.get("source", ""),
                                    q.get("session", "")))


async def session_edit(request: web.Request) -> web.Response:
    _holder_check(request)
    studio: Studio = request.app[STUDIO]
    b = await body(request)
    source = dataset.check_name("source", b.get("source"))
    session = dataset.check_name("session", b.get("session"))
    if b.get("action") == "delete":
        await studio.blocking(dataset.delete_session, studio.data, source, session)
    elif b.get("action") == "relabel":
        await studio.blocking(dataset.relabel_session, studio.data, source, session,
                              _word(b.get("label"), "the label"), b.get("old") or None)
    else:
        raise UserError("action must be relabel or delete")
    return ok()


async def add_label(request: web.Request) -> web.Response:
    _holder_check(request)
    studio: Studio = request.app[STUDIO]
    b = await body(request)
    label = _word(b.get("label"), "the label")
    if not (studio.data / dataset.MANIFEST).exists():
        from lanthorn.device.piece.frames import CHANNELS, DEFAULT_RATE_HZ, LABELS
        await studio.blocking(dataset.create_dataset, studio.data, DEFAULT_RATE_HZ, CHANNELS,
                              LABELS)
    labels = await studio.blocking(dataset.add_label, studio.data, label)
    return ok(list(labels))


def _start_busy(studio: Studio, kind: str) -> dict:
    if studio.busy:
        raise UserError(f"the studio is busy ({studio.busy}); wait for it to finish")
    studio.busy = kind
    job = {"id": secrets.token_hex(4), "kind": kind, "state": "running", "stage": kind,
           "progress": 0.0, "message": "", "started": time.time()}
    studio.jobs[job["id"]] = job
    studio.job_update(job)
    return job


def _stage_progress(studio: Studio, job: dict):
    """The ``progress(stage, fraction, message)`` callback the training pipelines report
    through, as updates of ``job`` (a negative fraction: stage and message only)."""
    def progress(stage, frac, msg):
        kw = {"stage": stage, "message": msg}
        if frac >= 0:
            kw["progress"] = frac
        studio.job_update(job, **kw)
    return progress


def _epochs(b: dict, default: int | None) -> int | None:
    """The request's ``epochs`` (1..500), else ``default`` (None: chosen from the data)."""
    try:
        epochs = default if b.get("epochs") in (None, "") else int(b["epochs"])
    except (TypeError, ValueError):
        raise UserError("epochs must be a whole number") from None
    if epochs is not None and not 1 <= epochs <= 500:
        raise UserError("epochs must be between 1 and 500")
    return epochs


def _in_background(studio: Studio, job: dict, work, failure=str, **answer) -> web.Response:
    """Run ``work()`` (a coroutine returning ``(result, message)``) as the studio's one busy
    job: done or failed on the page, the studio free again either way; answers at once with
    the job's id (plus ``answer``). ``failure(exc)`` is the error text the page shows."""
    async def runner():
        try:
            result, message = await work()
            studio.job_update(job, state="done", progress=1.0, result=result, message=message)
        except Exception as exc:  # shown on the page, as the CLI would print it
            studio.job_update(job, state="failed", error=failure(exc))
        finally:
            studio.busy = None

    task = asyncio.create_task(runner())
    studio.tasks.add(task)
    task.add_done_callback(studio.tasks.discard)
    return ok({"job": job["id"], **answer})


def _as_cli_says(exc: Exception) -> str:
    """A person's error as its message; anything else with its type, as a traceback would."""
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


async def record(request: web.Request) -> web.Response:
    _holder_check(request)
    studio: Studio = request.app[STUDIO]
    b = await body(request)
    label = _word(b.get("label"), "the label")
    dataset.check_name("label", label)
    try:
        seconds = float(b.get("seconds", 3))
    except (TypeError, ValueError):
        raise UserError("seconds must be a number") from None
    if not 0.5 <= seconds <= 60:
        raise UserError("a take lasts 0.5 to 60 seconds")
    summary = teach.dataset_summary(studio.data)
    if summary["exists"] and label not in summary["labels"]:
        raise UserError(f"the dataset has no label {label!r}; add it first")
    job = _start_busy(studio, "record")
    got = {"n": 0}
    want = seconds * 25.0

    def on_frames(data):
        got["n"] += len(data.get("rows") or [])
        studio.job_update(job, progress=min(1.0, got["n"] / want), message=f"{got['n']} frames")
        if data.get("now"):
            studio.emit({"type": "watch", "data": data["now"]})

    try:
        rows, done = await studio.blocking(
            lambda: studio.link.run(lambda c: c.record(label, seconds, on_frames=on_frames),
                                    timeout=seconds + 30))
        saved = await studio.blocking(teach.save_take, studio.data, label, rows, done,
                                      studio.link.describe, str(b.get("author") or ""),
                                      str(b.get("consent") or ""))
    except Exception as exc:
        studio.job_update(job, state="failed", error=str(exc))
        raise
    finally:
        studio.busy = None
    studio.job_update(job, state="done", progress=1.0, result=saved,
                      message=f"saved {saved['frames']} frames as {saved['session']}")
    return ok(saved)


async def train(request: web.Request) -> web.Response:
    _holder_check(request)
    studio: Studio = request.app[STUDIO]
    b = await body(request)
    epochs = _epochs(b, studio.train_epochs)  # none given: --epochs, or from the data's size
    name = f"studio-{time.strftime('%Y%m%d-%H%M%S')}"
    job = _start_busy(studio, "train")

    async def work():
        result = await studio.blocking(teach.train_and_quantize, studio.data, studio.models,
                                       name, epochs, _stage_progress(studio, job))
        return result, f"{name}: int8 accuracy {100 * (result['int8_accuracy'] or 0):.1f}%"

    return _in_background(studio, job, work, failure=_as_cli_says, name=name)


async def push(request: web.Request) -> web.Response:
    _holder_check(request)
    studio: Studio = request.app[STUDIO]
    b = await body(request)
    name, bundle = _bundle_named(b, "model", studio.models)
    models = {m["name"]: m for m in teach.list_models(studio.models)}
    flags = models[name]["flags"]
    if flags and not b.get("force"):
        return web.json_response({"ok": False, "flagged": True, "flags": flags,
                                  "error": f"{name} is below the quality gates"}, status=409)
    def installed(info: dict) -> tuple[dict, str]:
        if info.get("sha256") != sha:
            raise ConsoleError(f"the object accepted the push but runs {info.get('name')}")
        return info, f"the object now runs {info.get('name')}"

    data, sha = _bundle_bytes(bundle)
    return _push_job(studio, "push", data, installed)


# ----------------------------------------------------------------------------- Voice

async def voice_state(request: web.Request) -> web.Response:
    studio: Studio = request.app[STUDIO]
    info = await studio.blocking(voice_work.corpus_summary, studio.voice)
    return ok({**info, "last": studio.voice_result})


async def voice_weight(request: web.Request) -> web.Response:
    _holder_check(request)
    studio: Studio = request.app[STUDIO]
    b = await body(request)
    return ok(await studio.blocking(voice_work.set_weight, studio.voice, b.get("source"),
                                    b.get("weight")))


async def voice_train(request: web.Request) -> web.Response:
    _holder_check(request)
    studio: Studio = request.app[STUDIO]
    if studio.voice is None:
        raise UserError("the studio has no voice corpus (start it with --voice DIR)")
    b = await body(request)
    epochs = _epochs(b, voice_work.STUDIO_EPOCHS)
    name = f"voice-{time.strftime('%Y%m%d-%H%M%S')}"
    job = _start_busy(studio, "voice")

    async def work():
        result = await studio.blocking(voice_work.train_and_quantize, studio.voice,
                                       studio.voices, name, epochs, _stage_progress(studio, job))
        studio.voice_result = result
        return result, f"{name}: sample phrases below"

    return _in_background(studio, job, work, failure=_as_cli_says, name=name)


async def voice_push(request: web.Request) -> web.Response:
    """The voice bundle to the object over the same link (and push protocol) as a model;
    the object puts it in its voice slot, and ``model info`` must then report it."""
    _holder_check(request)
    studio: Studio = request.app[STUDIO]
    b = await body(request)
    name, bundle = _bundle_named(b, "voice", studio.voices, "; retrain first")

    def installed(info: dict) -> tuple[dict, str]:
        got = info.get("voice") or {}
        if got.get("sha256") != sha:
            raise ConsoleError(f"the object accepted the push but speaks with "
                               f"{got.get('name') or 'its phrase banks'}")
        return got, f"the object now speaks with {got.get('name')}"

    data, sha = _bundle_bytes(bundle)
    return _push_job(studio, "voice-push", data, installed)


def _bundle_named(b: dict, kind: str, folder: Path, hint: str = "") -> tuple[str, Path]:
    """The request's ``name`` (checked as a dataset-style name) and its bundle in ``folder``."""
    name = dataset.check_name(kind, b.get("name"))
    bundle = folder / f"{name}.lanthorn"
    if not bundle.is_file():
        raise UserError(f"no {kind} {name!r} in {folder}{hint}")
    return name, bundle


def _bundle_bytes(path) -> tuple[bytes, str]:
    from lanthorn.host.console_client import read_bundle_file
    return read_bundle_file(str(path))


def _push_job(studio: "Studio", kind: str, data: bytes, installed) -> web.Response:
    """Push ``data`` over the link as a background job with progress; then ``model info``,
    which ``installed(info) -> (result, message)`` checks (raising ConsoleError when the
    object does not run what was sent). The model and the voice pushes differ only there."""
    job = _start_busy(studio, kind)

    def progress(done):
        studio.job_update(job, progress=done / len(data), message=f"{done:,} of {len(data):,} bytes")

    async def work():
        info = await studio.blocking(
            lambda: studio.link.run(lambda c: (c.push(data, progress=progress),
                                               c.call("model info"))[1], timeout=600))
        result, message = installed(info)
        studio.link.model = info
        studio._emit({"type": "model", "model": info})
        return result, message

    return _in_background(studio, job, work)


# ----------------------------------------------------------------------------- app

def make_app(studio: Studio) -> web.Application:
    app = web.Application(middlewares=[guard], client_max_size=1 << 20)
    app[STUDIO] = studio

    async def on_startup(app):
        studio.loop = asyncio.get_running_loop()

    async def on_shutdown(app):
        for c in list(studio.hub.clients.values()):
            await c["ws"].close()

    app.on_startup.append(on_startup)
    app.on_shutdown.append(on_shutdown)
    r = app.router
    r.add_get("/", index)
    r.add_get("/report", report_page)
    r.add_static("/static", STATIC, follow_symlinks=False)
    r.add_get("/api/live", live)
    r.add_get("/api/state", state)
    r.add_post("/api/control", take_control)
    r.add_post("/api/set", set_param)
    r.add_post("/api/reset", reset_param)
    r.add_post("/api/save", save)
    r.add_post("/api/preset", preset)
    r.add_post("/api/lock", lock)
    r.add_post("/api/rollback", model_rollback)
    r.add_get("/api/sessions", sessions)
    r.add_get("/api/session", session_plot)
    r.add_post("/api/session", session_edit)
    r.add_post("/api/label", add_label)
    r.add_post("/api/record", record)
    r.add_post("/api/train", train)
    r.add_post("/api/push", push)
    r.add_get("/api/report/{name}/{file}", report_file)
    r.add_get("/api/voice", voice_state)
    r.add_post("/api/voice/weight", voice_weight)
    r.add_post("/api/voice/train", voice_train)
    r.add_post("/api/voice/push", voice_push)
    return app


def new_token() -> str:
    return secrets.token_urlsafe(24)
