"""The piece's two models on the running side: which gesture model and which voice run.

At start the model comes from the data directory (current, else previous, else the shipped
bundle: :meth:`DataDir.load_model <lanthorn.device.storage.storage.DataDir.load_model>`), every
candidate checked by :func:`~lanthorn.device.piece.inference.refuse_unfit`, so whatever a bundle's
header says, what is bound is a model that runs here, or none (the idle animation). A model
that fails while binding or running is set aside and the next one in that chain is bound.

A push (``install``) loads the bundle **once**: a voice bundle (its card says so) goes to
the voice slot, anything else must fit this object; the verified, loaded model is handed to
:meth:`DataDir.install_model` to be stored (the old one kept as previous) and is swapped in
by the loop thread on its next wake-up. ``rollback`` goes back to the slot's previous
bundle (else the shipped one), loaded and checked once by the data directory.
"""
from __future__ import annotations

import threading

from lanthorn.device.piece import frames as fr
from lanthorn.device.piece.inference import ModelMismatch, model_name, refuse_unfit
from lanthorn.device.piece.voice import is_voice, voice_of
from lanthorn.errors import UserError


class ModelSlots:
    """Model and voice for one piece. ``storage``: a DataDir or None (then models are used
    as given and installs swap in memory only); ``bind(model, source)``: makes a model the
    running one (raises on trouble: the fall-back chain follows)."""

    def __init__(self, storage, inference, voice_worker, journal, gesture_moods):
        self.storage, self.inference, self.voice_worker = storage, inference, voice_worker
        self.journal = journal
        self.gesture_moods = gesture_moods  # () -> the current gesture_moods parameter
        self.lock = threading.Lock()  # guards ``wanted`` (set by the console thread)
        self.wanted: tuple | None = None
        self.voice_source: str | None = None

    def refuse(self, model) -> None:
        """A candidate must fit this body's frame (its layout's channel names); the last
        refusal is kept for ``status`` (a body whose parts cannot feed the model says so)."""
        try:
            refuse_unfit(model, self.inference.channels)
        except ModelMismatch as exc:
            self.inference.unfit = f"{model_name(model)}: {exc}"
            raise

    # --- start-up
    def boot(self, model=..., voice=...) -> None:
        """Bind the given model (``...``: load it from storage) and set the voice."""
        source = "given" if model is not None else None
        if model is ...:
            model, source = self._load(skip=())
        self.bind(model, source)
        if voice is ...:
            voice = None
            if self.storage is not None:
                try:
                    voice, self.voice_source, msgs = self.storage.load_model(slot="voice")
                except Exception as exc:  # the boot path never crash-loops on stored state
                    voice, msgs = None, [f"no voice could be loaded ({exc}); phrase banks"]
                for m in msgs:
                    self.journal.say(m)
        elif voice is not None:
            self.voice_source = "given"
        self.voice_worker.set_voice(voice)

    def _load(self, skip: tuple) -> tuple:
        """(model, source) from storage, every message said; (None, None) without one."""
        if self.storage is None:
            return None, None
        try:
            model, source, msgs = self.storage.load_model(check=self.refuse, skip=skip)
        except Exception as exc:  # the boot path never crash-loops on stored state
            model, source, msgs = None, None, [f"no model could be loaded: {exc}"]
        for m in msgs:
            self.journal.say(m)
        return model, source

    # --- binding, on the loop thread
    def bind(self, model, source: str | None) -> None:
        """Make ``model`` the running one; if anything about it fails (whatever its header
        says), fall back: previous, then the shipped model, then the idle animation."""
        try:
            self._bind_now(model, source)
        except Exception as exc:
            self.journal.say(f"model {model_name(model)} ({source}) could not be started: "
                             f"{type(exc).__name__}: {exc}; falling back")
            self.fall_back(model, source)

    def fall_back(self, failed, source: str | None) -> None:
        """Bind the next usable model after ``failed`` (from ``source``) failed."""
        model, new_source = None, None
        if self.storage is not None and source in ("current", "previous", "shipped"):
            path = {"current": self.storage.current_path,
                    "previous": self.storage.previous_path}.get(source)
            if path is not None and path.exists():  # not again at the next boot
                self.storage.reject(path, f"{source} model failed on this object")
            model, new_source = self._load(skip=("shipped",) if source == "shipped" else ())
        elif self.storage is not None:  # a model given in memory: back to what is on disk
            model, new_source = self._load(skip=())
        if model is failed:
            model, new_source = None, None
        try:
            self._bind_now(model, new_source)
        except Exception as exc:
            self.journal.say(f"fall-back model failed too ({exc}); idle animation")
            self._bind_now(None, None)

    def _bind_now(self, model, source: str | None) -> None:
        self.inference.bind(model, source, self.gesture_moods())
        inf = self.inference
        self.journal.mark("model", f"model {inf.name} ({inf.source})" if inf.model is not None
                          else "no model: idle animation")

    def swap_wanted(self) -> bool:
        """Bind a model installed from the console thread, if any (True when one was)."""
        wanted = self.wanted
        if wanted is None:
            return False
        self.bind(*wanted)
        with self.lock:
            if self.wanted is wanted:
                self.wanted = None  # (also when it failed and a fall-back was bound)
        return True

    # --- the console's requests
    def install(self, path: str) -> None:
        """Verify and load the bundle at ``path`` once; store it and make it wanted (a
        gesture model) or speak with it (a voice). Raises UserError, changing nothing."""
        from lanthorn.device.engine.runtime import load
        try:
            candidate = load(path)
        except Exception as exc:
            raise UserError(f"the new model does not load, keeping the old one: {exc}") from None
        if is_voice(candidate):   # a voice bundle goes to the voice slot
            return self._install_voice(path, candidate)
        try:
            self.refuse(candidate)
        except ModelMismatch as exc:
            raise ModelMismatch(f"the new model does not fit this object, keeping the old one: "
                                f"{exc}") from None
        source = "given"
        if self.storage is not None:
            self.storage.install_model(path, loaded=candidate)
            source = "current"
        with self.lock:
            self.wanted = (candidate, source)
        self.journal.say(f"new model {model_name(candidate)} installed")

    def _install_voice(self, path: str, model) -> None:
        try:
            voice = voice_of(model)  # it speaks (which also warms it up)
        except Exception as exc:
            raise UserError(f"the new voice does not load, keeping the old one: {exc}") from None
        source = "given"
        if self.storage is not None:
            self.storage.install_model(path, slot="voice", loaded=voice)
            source = "current"
        self._use_voice(voice, source, "installed")

    def _use_voice(self, voice, source: str, how: str) -> None:
        self.voice_worker.set_voice(voice)
        self.voice_source = source
        self.journal.say(f"new voice {voice.name} {how}")
        self.journal.mark("model", f"voice {voice.name} ({source})")

    def rollback(self, slot: str = "model") -> None:
        """Back to the slot's previous bundle (else the shipped one), loaded once."""
        if slot not in ("model", "voice"):
            raise UserError(f"there is no {slot!r} to roll back (say 'model' or 'voice')")
        if self.storage is None:
            raise UserError("this piece runs without a data directory: there is no previous "
                            f"{slot} to roll back to")
        if slot == "voice":
            self._use_voice(self.storage.rollback("voice"), "current", "rolled back")
            return
        model = self.storage.rollback("model", check=self.refuse)
        with self.lock:
            self.wanted = (model, "current")
        self.journal.say(f"rolled back to model {model_name(model)}")

    # --- what runs
    def model_info(self) -> dict:
        """The model that runs (or is about to: an install waiting for the next frame)."""
        with self.lock:
            model, source = (self.wanted if self.wanted is not None
                             else (self.inference.model, self.inference.source))
        if model is None:
            return {"name": None, "source": None, "messages": list(self.journal.messages)[-5:],
                    "voice": self.voice_info()}
        spec = model.input_spec
        card = model.card if isinstance(model.card, dict) else {}
        # "sha256" is the internal digest (push and the studio compare it); the file's is beside
        return {"name": model_name(model), "sha256": model.sha256,
                "file_sha256": getattr(model, "file_sha256", None),
                "internal_digest": model.sha256, "labels": list(model.labels),
                "input": {"channels": list(spec.channels) or list(self.inference.channels),
                          "rate_hz": spec.rate_hz or fr.DEFAULT_RATE_HZ, "window": spec.shape[0],
                          "shape": list(spec.shape)},
                "backend": model.backend, "source": source,
                "card": {k: card[k] for k in list(card)[:8] if isinstance(card[k], (str, int, float))},
                "voice": self.voice_info()}

    def voice_info(self) -> dict:
        """The voice slot, for 'model info' (the second model the piece carries)."""
        voice = self.voice_worker.voice
        if voice is None:
            return {"name": None, "source": None}
        card = voice.model.card or {}
        return {"name": voice.name, "sha256": voice.sha256,
                "file_sha256": getattr(voice, "file_sha256", None), "source": self.voice_source,
                "backend": voice.model.backend, "context": voice.spec.context,
                "characters": len(voice.spec.vocab), "moods": list(voice.spec.moods),
                "licence": card.get("licence"), "macs_per_char": card.get("macs_per_char")}
