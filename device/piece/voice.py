"""The voice: a tiny character-level language model that speaks the piece's mood on the OLED.

A voice bundle is an ordinary ``.lanthorn`` bundle (the same int8 engine, the same QDQ twin
for onnxruntime) whose card says ``"kind": "voice"``. Everything the device needs to speak
with it lives here, in one place:

* **the token layout** (:class:`VoiceSpec`): the model reads ``1 + context`` int32 indices
  into one embedding table — first a *mood token* (row ``len(vocab) + mood index``), then
  the last ``context`` characters (rows ``0..len(vocab)-1``), left-padded with the phrase
  boundary ``"\\n"`` — and answers next-character logits over ``vocab``. ``"\\n"`` also
  ends a phrase. A spec with ``words`` = k > 0 reads only the word being written and the k
  words before it (:func:`word_window`: older characters are the boundary): such a voice
  chooses its next word from the last one or two, like a word Markov chain, so it
  recombines its corpus at every shared word instead of reciting whole lines. The vocabulary is printable ASCII at most (:data:`OLED_CHARSET`), so
  every phrase can be drawn by the display's font, including Pillow's bitmap fallback;
* **the sampler** (:func:`sample_index`): temperature and top-k on the *int8* logits the
  engine computes, with a seeded :class:`numpy.random.Generator`. Because it starts from
  the raw integers, a phrase made by lanthorn's engine and one made by onnxruntime on the
  twin are the same string whenever their integers agree (which the tests check);
* **every word the artist's** (:mod:`lanthorn.device.engine.lexicon`): a voice bundle carries the
  trie of its corpus's words, and the sampler may only pick a character that continues a
  corpus word or ends one, so the voice cannot write a word the artist did not give it
  (a bundle without a lexicon, made before it existed, speaks unconstrained);
* **generation** (:meth:`Voice.generate`) with a time budget: a phrase ends at the phrase
  boundary; one that would be cut at ``max_len`` is written again with the next seed
  (up to :data:`MAX_TRIES` times, while the budget lasts); a phrase that takes longer than
  ``budget_ms`` or never finishes is abandoned (the phrase bank speaks instead);
* **off the hot path** (:class:`VoiceWorker`): the loop only posts a request and later
  picks up the finished phrase; the worker thread hands the interpreter over once
  :data:`YIELD_MS` have passed since it last did, so the 60 fps loop is never held up long;
* **when to speak** (:class:`Speaker`): on a mood change (rate-limited by
  ``voice_min_interval_s``) and every ``phrase_interval_s``, falling back to the
  hand-written :class:`~lanthorn.device.piece.behaviour.PhraseBank` when no voice is installed,
  the voice is switched off, or a phrase fails or runs out of time.

Only the standard library and numpy are imported here (the device rule).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lanthorn.device.engine.graph import raw_outputs
from lanthorn.device.piece.worker import RequestThread
from lanthorn.errors import UserError

KIND = "voice"
#: Characters the OLED can show: printable ASCII. The default FreeType font covers more,
#: but Pillow without FreeType falls back to a bitmap font with ASCII only, and a voice must
#: never produce a character that turns into a box on some device.
OLED_CHARSET = frozenset(chr(c) for c in range(32, 127))
BOUNDARY = "\n"
MIN_TEMPERATURE = 1e-3   # below this the sampler is greedy
#: milliseconds the worker writes between two hand-overs of the interpreter, so the loop
#: waits at most about that long for the voice. By time, not by characters: a hand-over
#: on a busy machine can cost a scheduler slice, and a phrase of 30 characters (~0.5 ms
#: here: x86, C kernel, sampler included) should not pay for four of them (measured in
#: make demo at load 12 on 2 CPUs: phrase p50 9-11 ms when yielding every 8 characters)
YIELD_MS = 1.0
#: the parameters (device/piece/params.py) that decide what the voice writes: the card, the
#: tasting notes and the bench record them
SAMPLER_PARAMS = ("voice_temperature", "voice_top_k", "voice_max_len", "voice_min_len")
#: attempts at a phrase that ends at the boundary before giving up: the first draws with
#: ``seed``, a retry k with the seed sequence (seed, k), so that phrase n's retry is not
#: phrase n+1 (which draws with seed+1)
MAX_TRIES = 4


class VoiceError(UserError):
    """A voice bundle that cannot speak on this object (the message says why)."""


@dataclass(frozen=True)
class VoiceSpec:
    """The token layout of a voice model (stored in its card as ``card["voice"]``)."""

    vocab: str            # index -> character; vocab[0] is the boundary "\n"
    moods: tuple[str, ...]
    context: int          # characters of history the model reads
    words: int = 0        # > 0: of those, only the word being written and this many before

    @property
    def n_tokens(self) -> int:
        """Rows of the embedding table: characters, then one per mood."""
        return len(self.vocab) + len(self.moods)

    @property
    def input_len(self) -> int:
        return 1 + self.context

    def mood_token(self, mood: str) -> int:
        try:
            return len(self.vocab) + self.moods.index(mood)
        except ValueError:
            return len(self.vocab)  # an unknown mood speaks as the first (resting) one

    def encode(self, text: str) -> list[int]:
        index = {c: i for i, c in enumerate(self.vocab)}
        return [index[c] for c in text if c in index]

    def to_json(self) -> dict:
        d = {"vocab": self.vocab, "moods": list(self.moods), "context": self.context}
        if self.words:            # absent in voices made before word windows
            d["words"] = self.words
        return d

    def separators(self) -> np.ndarray:
        """Per vocabulary index: True for the boundary and every non-word character."""
        from lanthorn.device.engine.lexicon import WORD_CHARS
        return np.array([i == 0 or c not in WORD_CHARS for i, c in enumerate(self.vocab)])

    @classmethod
    def from_json(cls, d: dict) -> "VoiceSpec":
        vocab, moods, context = str(d["vocab"]), tuple(str(m) for m in d["moods"]), int(d["context"])
        words = int(d.get("words", 0))
        if not 0 <= words <= 8:
            raise VoiceError("the voice's word window must be 0..8 words")
        if not vocab or vocab[0] != BOUNDARY or len(set(vocab)) != len(vocab):
            raise VoiceError("the voice's vocabulary must start with the phrase boundary and "
                             "have no repeated character")
        bad = sorted(set(vocab[1:]) - OLED_CHARSET)
        if bad:
            raise VoiceError(f"the voice can write characters the OLED cannot show: {bad!r}")
        if not moods or not 1 <= context <= 256:
            raise VoiceError("the voice must name its moods and read 1..256 characters")
        return cls(vocab, moods, context, words)


def word_window(ctx, sep, words: int):
    """Keep, at the end of ``ctx`` (character indices, oldest first), the word being written
    and the ``words`` words before it with their separators; set everything older to the
    boundary (0), in place. ``sep[i]``: index i is not a word character."""
    j = len(ctx)
    while j > 0 and not sep[ctx[j - 1]]:          # the word being written
        j -= 1
    for _ in range(words):
        while j > 0 and sep[ctx[j - 1]] and ctx[j - 1] != 0:   # its separators
            j -= 1
        while j > 0 and not sep[ctx[j - 1]]:      # the word before
            j -= 1
    ctx[:j] = 0
    return ctx


def is_voice(model_or_bundle) -> bool:
    card = getattr(model_or_bundle, "card", None) or {}
    return isinstance(card, dict) and card.get("kind") == KIND


def voice_spec(model) -> VoiceSpec:
    """The voice layout of a loaded model, checked against its graph. Raises VoiceError."""
    card = model.card or {}
    if card.get("kind") != KIND or not isinstance(card.get("voice"), dict):
        raise VoiceError("this bundle is not a voice (its card has no \"kind\": \"voice\")")
    try:
        spec = VoiceSpec.from_json(card["voice"])
    except (KeyError, TypeError, ValueError) as exc:
        raise VoiceError(f"the voice's card is unreadable: {exc}") from None
    g = model.graph
    if len(g.inputs) != 1 or len(g.outputs) != 1:
        raise VoiceError("a voice model has one input (tokens) and one output (logits)")
    t = g.tensors[g.inputs[0]]
    if t.dtype != "int32" or int(np.prod(t.shape)) != spec.input_len:
        raise VoiceError(f"the voice reads {t.dtype} {tuple(t.shape)}; its card says "
                         f"{spec.input_len} token indices")
    rows = [int(layer.arrays["table"].shape[0]) for layer in g.layers if layer.op == "gather"]
    if rows != [spec.n_tokens]:
        raise VoiceError(f"the voice's embedding table has {rows} rows; its card needs "
                         f"{spec.n_tokens} ({len(spec.vocab)} characters + {len(spec.moods)} moods)")
    out = g.tensors[g.outputs[0]]
    if int(np.prod(out.shape)) != len(spec.vocab):
        raise VoiceError(f"the voice answers {int(np.prod(out.shape))} logits for "
                         f"{len(spec.vocab)} characters")
    return spec


def sample_index(raw: np.ndarray, scale: float, zero_point: int, temperature: float,
                 top_k: int, rng: np.random.Generator, allowed: np.ndarray | None = None) -> int:
    """The next character's index from the int8 logits ``raw``.

    ``allowed`` (ascending indices; None: all) is what the lexicon permits: the others are
    never picked. temperature below MIN_TEMPERATURE (or top_k == 1) is greedy (ties: the
    lowest index; dividing by a near-zero temperature would overflow to infinity). Otherwise
    the ``top_k`` largest allowed logits (0: all; ties broken by index) are kept, divided by
    the temperature and soft-maxed in float64, and one index is drawn with one uniform from
    ``rng``: the same integers and seed give the same character everywhere."""
    q = raw.reshape(-1).astype(np.int64)
    if allowed is not None:
        q = q[allowed]
        return int(allowed[_sample(q, scale, zero_point, temperature, top_k, rng)])
    return _sample(q, scale, zero_point, temperature, top_k, rng)


def _sample(q: np.ndarray, scale: float, zero_point: int, temperature: float, top_k: int,
            rng: np.random.Generator) -> int:
    if temperature < MIN_TEMPERATURE or top_k == 1 or q.size == 1:
        return int(np.argmax(q))
    order = np.argsort(-q, kind="stable")
    if 0 < top_k < q.size:
        order = order[:top_k]
    logits = (q[order] - int(zero_point)).astype(np.float64) * (float(scale) / float(temperature))
    p = np.exp(logits - logits.max())
    c = np.cumsum(p)
    u = rng.random() * c[-1]
    return int(order[min(int(np.searchsorted(c, u, side="right")), order.size - 1)])


@dataclass
class Phrase:
    """One generated phrase and how it was made (for the timeline and the report)."""

    text: str
    mood: str
    seed: int
    ms: float
    chars: int
    complete: bool      # ended with the boundary (not cut at max length)
    timed_out: bool = False
    voice: str = ""     # the voice that made it: one pushed meanwhile may not have
    tries: int = 1      # attempts it took (a phrase cut at max length is written again)


class Voice:
    """A loaded voice model, ready to speak. ``step(tokens)`` returns the int8 logits; by
    default it is the int8 engine, tests substitute onnxruntime on the twin to compare.
    ``lexicon`` (trie bytes; default: the bundle's) constrains the words it may write."""

    _name = "voice"   # what a voice made from parts (no bundle, no card) is called

    def __init__(self, model, step: Callable[[np.ndarray], np.ndarray] | None = None,
                 lexicon: bytes | None = None):
        self.model = model
        spec = voice_spec(model)
        g = model.graph
        out = g.tensors[raw_outputs(g)[0]]
        if lexicon is None:
            lexicon = getattr(getattr(model, "bundle", None), "lexicon", None)
        self._setup(spec, step or (lambda x: model.run_quantized(x)), float(out.scale),
                    int(out.zero_point), lexicon)

    @classmethod
    def from_parts(cls, spec: VoiceSpec, step: Callable[[np.ndarray], np.ndarray], scale: float,
                   zero_point: int, lexicon: bytes | None, name: str = "voice") -> "Voice":
        """A voice made of a step function and its int8 output scale, not a bundle: the
        training sweep tastes its float candidates with the device's own decoder."""
        voice = cls.__new__(cls)
        voice.model = None
        voice._name = name
        voice._setup(spec, step, scale, zero_point, lexicon)
        return voice

    def _setup(self, spec, step, scale, zero_point, lexicon) -> None:
        from lanthorn.device.engine.lexicon import WordState, decode
        self.spec, self.step = spec, step
        self.scale, self.zero_point = float(scale), int(zero_point)
        self._tokens = np.zeros((spec.input_len,), np.int32)
        if self.model is not None:
            self._tokens = np.zeros(tuple(self.model.graph.tensors[
                self.model.graph.inputs[0]].shape), np.int32)
        self.lexicon = decode(lexicon) if lexicon else None
        self.words = WordState(self.lexicon, spec.vocab) if self.lexicon is not None else None
        self._sep = spec.separators()
        self._hist = np.zeros(spec.context, np.int64)

    @property
    def sha256(self):
        return self.model.sha256 if self.model is not None else None

    @property
    def file_sha256(self):
        return self.model.file_sha256

    @property
    def name(self) -> str:
        if self.model is None:
            return self._name
        card = self.model.card or {}
        return str(card.get("name") or f"voice-{str(self.sha256 or '')[:8]}")

    def speak(self, mood: str, seed: int, params: dict, budget_ms: float | None = None,
              yield_ms: float = 0.0) -> Phrase:
        """One phrase as the piece writes it: the sampler's parameters read from ``params``
        (a ParamStore snapshot) in one place, for the worker, the tasting panel and bench."""
        return self.generate(mood, seed, params["voice_temperature"], params["voice_top_k"],
                             params["voice_max_len"], budget_ms, yield_ms,
                             min_len=int(params.get("voice_min_len", 0)))

    def generate(self, mood: str, seed: int, temperature: float = 0.8, top_k: int = 8,
                 max_len: int = 40, budget_ms: float | None = None,
                 yield_ms: float = 0.0, tries: int = MAX_TRIES, min_len: int = 0) -> Phrase:
        """One phrase for ``mood``. Ends at the boundary, not before ``min_len`` characters
        (when the lexicon allows going on); a phrase cut at ``max_len`` is written again
        with the next seed (see :data:`MAX_TRIES`; ``tries`` attempts in all, while
        ``budget_ms`` lasts); the last cut attempt is cut back to its last whole word and
        marked incomplete. Past ``budget_ms`` the phrase is timed out. ``yield_ms`` > 0
        hands the interpreter to other threads each time that many milliseconds have passed
        (the worker thread, so the loop never waits long for it)."""
        t0 = time.perf_counter()
        deadline = None if budget_ms is None else t0 + budget_ms / 1e3
        for k in range(max(1, int(tries))):
            text, n, complete, timed_out = self._attempt(mood, seed, temperature, top_k, max_len,
                                                         deadline, yield_ms, min_len, k)
            if complete or timed_out:
                break
        if not complete and " " in text.strip():
            text = text[:text.rstrip().rfind(" ")]
        text = " ".join(text.split())
        return Phrase(text, mood, int(seed), (time.perf_counter() - t0) * 1e3, n,
                      complete, timed_out, self.name, k + 1)

    def _attempt(self, mood, seed, temperature, top_k, max_len, deadline, yield_ms, min_len,
                 tries_k=0):
        """One try: (text, characters, ended at the boundary, timed out)."""
        spec, words, hist = self.spec, self.words, self._hist
        rng = np.random.default_rng(int(seed) if not tries_k else (int(seed), tries_k))
        flat = self._tokens.reshape(-1)
        flat[0] = spec.mood_token(mood)
        flat[1:] = 0                    # the boundary: the start of a phrase
        hist[:] = 0
        if words is not None:
            words.reset()
        chars: list[str] = []
        handover = time.perf_counter() + yield_ms / 1e3
        for n in range(1, int(max_len) + 1):
            raw = self.step(self._tokens)
            allowed = None if words is None else words.allowed
            if n <= min_len and allowed is not None and allowed[0] == 0 and allowed.size > 1:
                allowed = allowed[1:]          # too short to end yet
            i = sample_index(np.asarray(raw), self.scale, self.zero_point, temperature, top_k,
                             rng, allowed)
            if i == 0:
                return "".join(chars), n - 1, True, False
            chars.append(spec.vocab[i])
            if words is not None:
                words.push(i)
            hist[:-1] = hist[1:].copy()
            hist[-1] = i
            if spec.words:
                flat[1:] = word_window(hist.copy(), self._sep, spec.words)
            else:
                flat[1:] = hist
            now = time.perf_counter()
            if deadline is not None and now > deadline:
                return "".join(chars), n, False, True
            if yield_ms and now > handover:
                time.sleep(0)   # let the loop thread take the interpreter
                handover = time.perf_counter() + yield_ms / 1e3
        return "".join(chars), len(chars), False, False


def voice_of(model) -> Voice:
    """A loaded bundle as a voice: checked (:func:`voice_spec`) and run once (which also
    warms it up). Raises VoiceError (or the engine's error) when it cannot speak."""
    voice = Voice(model)
    voice.step(voice._tokens)
    return voice


def load_voice(path, backend: str = "auto") -> Voice:
    """Load and check a voice bundle; runs it once (which also warms it up)."""
    from lanthorn.device.engine.runtime import load
    return voice_of(load(path, backend=backend))


class VoiceWorker(RequestThread):
    """Generates phrases on its own thread. ``request`` never waits; ``take`` returns the
    finished phrase (or None). With ``threaded=False`` the request is served at once (tests,
    reproducible runs)."""

    def __init__(self, voice: Voice | None, threaded: bool = True):
        self.voice = voice
        self.threaded = threaded
        self._done: list[Phrase | Exception] = []
        self._busy = False
        self._start_thread(threaded, "lanthorn-voice")

    @property
    def busy(self) -> bool:
        return self._busy or self._pending is not None

    def set_voice(self, voice: Voice | None) -> None:
        with self._cond:
            self.voice = voice

    def request(self, mood: str, seed: int, params: dict) -> bool:
        """Ask for a phrase; False when there is no voice or one is being made."""
        with self._cond:
            if self.voice is None or self._busy or self._pending is not None:
                return False
            self._pending = (mood, seed, dict(params))
            self._cond.notify()
        if not self.threaded:
            self._serve()
        return True

    def take(self) -> Phrase | Exception | None:
        with self._cond:
            return self._done.pop(0) if self._done else None

    def _serve(self) -> None:
        with self._cond:
            request, self._pending = self._pending, None
            voice = self.voice
            self._busy = request is not None
        if request is None or voice is None:   # no voice: nothing was asked of it
            return
        mood, seed, p = request
        try:
            result: Phrase | Exception = voice.speak(
                mood, seed, p, p["voice_budget_ms"], yield_ms=YIELD_MS if self.threaded else 0.0)
        except Exception as exc:  # a voice that breaks must not stop the piece
            result = exc
        with self._cond:
            self._done.append(result)
            self._busy = False
            self._cond.notify_all()

    def _serve_next(self) -> None:
        self._serve()

    def wait(self, timeout: float = 2.0) -> None:
        """Until the request in progress is finished (tests, the demo's last frame)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while (self._busy or self._pending is not None) and time.monotonic() < deadline:
                self._cond.wait(0.01)


class Speaker:
    """Decides what the OLED says: the voice when there is one, else the phrase bank.

    A phrase is due when the mood changes (at once, if ``voice_min_interval_s`` has passed
    since the last generated phrase; otherwise as soon as it has) and every
    ``phrase_interval_s``. The worker's phrase is shown on the frame after it is ready; a
    phrase that failed, timed out, never finished or came back empty is replaced by the
    bank's.
    ``on_phrase(phrase, source)`` is told about every phrase shown ("voice" or "bank")."""

    def __init__(self, bank, worker: VoiceWorker | None = None,
                 on_phrase: Callable[[object, str], None] | None = None):
        self.bank = bank
        self.worker = worker
        self.on_phrase = on_phrase
        self.mood: str | None = None
        self.last_voice_t = -1e9
        self.last_t = -1e9
        self.pending_mood: str | None = None  # a mood change waiting for the rate limit
        self.count = 0
        self.failures = 0
        self.text = ""

    @property
    def speaking(self) -> bool:
        return self.worker is not None and self.worker.busy

    def _voice_on(self, p: dict) -> bool:
        return bool(p.get("voice_enabled", True)) and self.worker is not None \
            and self.worker.voice is not None

    def update(self, mood: str, t: float, p: dict) -> str | None:
        """The new text when it changes, else None. Called once per rendered frame."""
        if not self._voice_on(p):
            if self.worker is not None:
                self.worker.take()   # a phrase finished after the voice was switched off
            text = self.bank.update(mood, t, p)
            if text is not None:
                self.text = text
                if self.on_phrase and text:
                    self.on_phrase(text, "bank")
            self.mood = mood
            return text
        worker = self.worker
        assert worker is not None  # _voice_on says there is one
        shown = None
        done = worker.take()
        if done is not None:
            if isinstance(done, Phrase) and done.text and done.complete and not done.timed_out:
                shown = done.text
                if self.on_phrase:
                    self.on_phrase(done, "voice")
            else:
                self.failures += 1
                self.bank.mood = None          # force the bank to answer now
                self.bank.since = -1e9
                shown = self.bank.update(done.mood if isinstance(done, Phrase) else mood, t, p)
                if self.on_phrase and shown:
                    self.on_phrase(shown, "bank")
        if mood != self.mood:
            self.pending_mood = mood
            self.mood = mood
        interval = float(p.get("phrase_interval_s", 8.0))
        wait = float(p.get("voice_min_interval_s", 2.0))
        due = (self.pending_mood is not None and t - self.last_voice_t >= wait) or \
            t - self.last_t >= interval
        if due and not worker.busy:
            seed = int(p.get("voice_seed", 0)) + self.count
            if worker.request(mood, seed, p):
                self.count += 1
                self.last_voice_t = self.last_t = t
                self.pending_mood = None
                if not worker.threaded:       # served at once: show it on this frame
                    return self.update(mood, t, p) or shown
        if shown is not None and shown != self.text:
            self.text = shown
            return shown
        return None
