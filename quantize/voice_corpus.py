"""The voice's text corpus: sources with provenance and weights, lines with what they were for.

A corpus is a folder, in the spirit of the sensor datasets (:mod:`lanthorn.device.storage.dataset`)::

    CORPUS/manifest.json        {"format": "lanthorn-voice-corpus", "version": 1,
                                 "sources": {ID: {author, consent, licence, date, notes,
                                                  weight, file, imports: [...]}}}
    CORPUS/sources/ID.txt       one phrase a line; "# ..." lines are comments; a line may
                                start with tags in brackets saying what it was written for:
                                "[calm] the room is quiet", "[stroke_cw delighted] again!"

``weight`` is how strongly a source flavours the voice, per character: a source's
*effective share* is its characters times its weight over the sum of those ("a hint of"
this = a small weight). Training weighs every example by its source's weight.

Tags are moods (the piece's) or gestures; a gesture stands for the moods it evokes in the
default temperament. An untagged line speaks for every mood.

A source of ``"kind": "words"`` is a word list, not lines: its words (separated by spaces,
commas or new lines; "#" comments allowed) join the voice's lexicon, the words the voice
may write (:mod:`lanthorn.device.engine.lexicon`), without adding training lines. The voice can
only say a word of the corpus: its lines' words and its word lists'.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from lanthorn.device.piece.behaviour import DEFAULT_GESTURE_MOODS, DEFAULT_MOODS
from lanthorn.device.piece.voice import OLED_CHARSET
from lanthorn.device.storage.atomic import atomic_write_text
from lanthorn.errors import UserError

FORMAT = "lanthorn-voice-corpus"
VERSION = 1
MANIFEST = "manifest.json"
KINDS = ("lines", "words")   # a source of phrases, or a word list for the lexicon
MAX_LINE_CHARS = 60      # longer phrases never fit the 128x64 OLED; import splits them
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TAGS = re.compile(r"^\[([^\]]*)\]\s*")
#: Licences under which a corpus may ship inside the piece's code and bundles.
SHIPPABLE_LICENCES = ("CC0-1.0", "public-domain", "MIT", "CC-BY-4.0", "CC-BY-SA-4.0", "Apache-2.0")


class CorpusError(UserError):
    """A corpus, source or imported text that cannot be used (the message says why)."""


@dataclass
class TextSource:
    """Who wrote a source, on what terms, and how much it counts."""

    name: str
    author: str = ""
    consent: str = ""
    licence: str = ""
    date: str = ""
    notes: str = ""
    weight: float = 1.0
    imports: list = field(default_factory=list)
    kind: str = "lines"      # see KINDS

    @property
    def file(self) -> str:
        return f"sources/{self.name}.txt"

    def to_json(self) -> dict:
        d = asdict(self)
        del d["name"]
        if self.kind == "lines":   # the default: manifests written before kinds stay as they were
            del d["kind"]
        d["file"] = self.file
        return d


@dataclass
class Line:
    source: str
    text: str
    moods: tuple[str, ...]     # empty: every mood
    tags: tuple[str, ...]
    lineno: int


@dataclass
class Corpus:
    path: Path
    sources: dict[str, TextSource]
    lines: list[Line]
    #: words of the word-list sources ({source: [word, ...]}), beside the lines' words
    word_lists: dict[str, list[str]] = field(default_factory=dict)

    def words(self) -> list[str]:
        """Every word the voice may write: the lines' and the word lists', sorted."""
        from lanthorn.device.engine.lexicon import words_of
        out = {w for line in self.lines for w in words_of(line.text)}
        out.update(w for ws in self.word_lists.values() for w in ws)
        return sorted(out)

    def chars_by_source(self) -> dict[str, int]:
        out = {s: 0 for s in self.sources}
        for line in self.lines:
            out[line.source] += len(line.text)
        return out

    def effective_shares(self) -> dict[str, float]:
        chars = self.chars_by_source()
        w = {s: chars[s] * max(self.sources[s].weight, 0.0) for s in self.sources}
        total = sum(w.values()) or 1.0
        return {s: v / total for s, v in w.items()}


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise CorpusError(f"source name {name!r} must be 1-64 letters, digits, '.', '_' or '-' "
                          f"(starting with a letter or digit)")
    return name


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise CorpusError(f"source kind must be one of {', '.join(KINDS)}, got {kind!r}")
    return kind


def _check_weight(weight: float) -> float:
    if not (0.0 <= float(weight) <= 100.0):
        raise CorpusError(f"weight must be between 0 and 100, got {weight:g}")
    return float(weight)


def read_manifest(path) -> dict[str, TextSource]:
    root = Path(path)
    mp = root / MANIFEST
    if not mp.exists():
        raise CorpusError(f"{root} is not a voice corpus (no {MANIFEST}); start one with "
                          f"'lanthorn voice add-source {root} NAME --author ... --licence ...'")
    try:
        data = json.loads(mp.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{mp}: unreadable JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CorpusError(f"{mp}: not a voice corpus manifest (format must be {FORMAT!r})")
    if int(data.get("version", 0)) > VERSION:
        raise CorpusError(f"{mp}: corpus format {data['version']} is newer than this lanthorn "
                          f"reads ({VERSION}); upgrade lanthorn")
    out = {}
    for name, d in (data.get("sources") or {}).items():
        if not isinstance(d, dict):
            raise CorpusError(f"{mp}: source {name!r} must be an object")
        try:
            src = TextSource(check_name(name), str(d.get("author", "")), str(d.get("consent", "")),
                             str(d.get("licence", "")), str(d.get("date", "")),
                             str(d.get("notes", "")), _check_weight(float(d.get("weight", 1.0))),
                             list(d.get("imports", [])), _check_kind(str(d.get("kind", "lines"))))
        except (TypeError, ValueError) as exc:
            raise CorpusError(f"{mp}: source {name!r}: {exc}") from None
        out[name] = src
    return out


def write_manifest(path, sources: dict[str, TextSource]) -> None:
    data = {"format": FORMAT, "version": VERSION,
            "sources": {n: s.to_json() for n, s in sorted(sources.items())}}
    atomic_write_text(Path(path) / MANIFEST, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def add_source(path, source: TextSource, replace: bool = False) -> TextSource:
    root = Path(path)
    check_name(source.name)
    _check_weight(source.weight)
    _check_kind(source.kind)
    if root.exists() and not root.is_dir():
        raise CorpusError(f"{root} is a file; give a folder for the corpus")
    root.mkdir(parents=True, exist_ok=True)
    (root / "sources").mkdir(exist_ok=True)
    sources = read_manifest(root) if (root / MANIFEST).exists() else {}
    if source.name in sources and not replace:
        raise CorpusError(f"source {source.name!r} already exists in {root}; use --replace to "
                          f"update its details")
    if source.name in sources:
        source.imports = sources[source.name].imports
    sources[source.name] = source
    write_manifest(root, sources)
    f = root / source.file
    if not f.exists():
        atomic_write_text(f, "")
    return source


def set_weight(path, name: str, weight: float) -> TextSource:
    """Change one source's weight (the studio's sliders), leaving everything else in the
    manifest as it was; a bad weight or unknown source is refused before anything is written."""
    root = Path(path)
    sources = read_manifest(root)
    if name not in sources:
        have = ", ".join(sources) or "none yet"
        raise CorpusError(f"no source {name!r} in {root} (sources: {have})")
    try:
        weight = float(weight)
    except (TypeError, ValueError):
        raise CorpusError(f"weight must be a number between 0 and 100, got {weight!r}") from None
    sources[name].weight = _check_weight(weight)
    write_manifest(root, sources)
    return sources[name]


def parse_tags(text: str) -> tuple[tuple[str, ...], str]:
    """'[calm tap] hello' -> (('calm', 'tap'), 'hello')."""
    m = _TAGS.match(text)
    if not m:
        return (), text
    tags = tuple(t for t in re.split(r"[\s,]+", m.group(1).strip()) if t)
    return tags, text[m.end():]


def moods_of(tags: tuple[str, ...], moods=DEFAULT_MOODS,
             gesture_moods=DEFAULT_GESTURE_MOODS) -> tuple[tuple[str, ...], list[str]]:
    """Moods a line speaks for, and the tags that are neither a mood nor a gesture."""
    out, unknown = [], []
    for t in tags:
        if t in moods:
            out.append(t)
        elif t in gesture_moods:
            evoked = gesture_moods[t]
            out.append(max(evoked, key=evoked.get))   # the mood it evokes most
        else:
            unknown.append(t)
    return tuple(dict.fromkeys(out)), unknown


def read_word_list(text: str, where: str = "word list") -> list[str]:
    """The words of a word-list source: separated by spaces, commas or new lines, "#"
    comment lines skipped; a word the lexicon cannot hold is refused, naming it."""
    from lanthorn.device.engine.lexicon import WORD_CHARS
    out = []
    for i, raw in enumerate(text.splitlines(), 1):
        if raw.strip().startswith("#"):
            continue
        for w in re.split(r"[\s,]+", raw.strip()):
            if not w:
                continue
            if any(c not in WORD_CHARS for c in w) or len(w) > 64:
                raise CorpusError(f"{where}, line {i}: {w[:40]!r} is not a word (letters, digits "
                                  f"and apostrophes, at most 64): one word per entry, no "
                                  f"punctuation")
            out.append(w)
    return out


def load_corpus(path) -> Corpus:
    root = Path(path)
    sources = read_manifest(root)
    lines: list[Line] = []
    word_lists: dict[str, list[str]] = {}
    for name, src in sources.items():
        f = root / src.file
        if not f.exists():
            continue
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise CorpusError(f"{f}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if src.kind == "words":
            word_lists[name] = read_word_list(text, str(f))
            continue
        for i, raw in enumerate(text.splitlines(), 1):
            raw = raw.strip()
            if not raw or raw.startswith("#"):
                continue
            tags, body = parse_tags(raw)
            body = " ".join(body.split())
            if not body:
                continue
            moods, _ = moods_of(tags)
            lines.append(Line(name, body, moods, tags, i))
    return Corpus(root, sources, lines, word_lists)


def split_text(text: str, paragraphs: bool = False, max_chars: int = MAX_LINE_CHARS) -> list[str]:
    """Plain text -> phrases: one a line, or (``paragraphs``) sentences of blank-line
    separated paragraphs; each phrase cut at word boundaries to at most ``max_chars``."""
    if paragraphs:
        chunks = []
        for para in re.split(r"\n\s*\n", text):
            para = " ".join(para.split())
            chunks += [s for s in re.split(r"(?<=[.!?;:])\s+", para) if s]
    else:
        chunks = [" ".join(line.split()) for line in text.splitlines()]
    out = []
    for chunk in chunks:
        if not chunk or chunk.startswith("#"):
            continue
        words, line = chunk.split(), ""
        for w in words:
            cand = f"{line} {w}".strip()
            if len(cand) > max_chars and line:
                out.append(line)
                line = w[:max_chars]
            else:
                line = cand[:max_chars]
        if line:
            out.append(line)
    return out


def import_text(path, source: str, file, paragraphs: bool = False,
                tags: tuple[str, ...] = ()) -> dict:
    """Append the phrases of a plain-text ``file`` to ``source`` (which must exist)."""
    root = Path(path)
    sources = read_manifest(root)
    if source not in sources:
        have = ", ".join(sources) or "none yet"
        raise CorpusError(f"no source {source!r} in {root} (sources: {have}); declare it first "
                          f"with 'lanthorn voice add-source {root} {source} --author ... "
                          f"--licence ...'")
    _, unknown = moods_of(tuple(tags))
    if unknown:
        raise CorpusError(f"unknown tag(s) {', '.join(unknown)}: tags are moods "
                          f"({', '.join(DEFAULT_MOODS)}) or gestures ({', '.join(DEFAULT_GESTURE_MOODS)})")
    file = Path(file)
    data = file.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start}); save it "
                          f"as UTF-8 and import again") from None
    phrases = split_text(text, paragraphs)
    if not phrases:
        raise CorpusError(f"{file}: no phrases found (empty, or only comments)")
    prefix = f"[{' '.join(tags)}] " if tags else ""
    target = root / sources[source].file
    old = target.read_text(encoding="utf-8") if target.exists() else ""
    if old and not old.endswith("\n"):
        old += "\n"
    atomic_write_text(target, old + "".join(f"{prefix}{p}\n" for p in phrases))
    record = {"file": file.name, "sha256": hashlib.sha256(data).hexdigest(),
              "phrases": len(phrases), "paragraphs": bool(paragraphs), "tags": list(tags),
              "date": datetime.date.today().isoformat()}
    sources[source].imports.append(record)
    write_manifest(root, sources)
    return record


def summarize(path) -> dict:
    """The figures ``lanthorn voice info`` shows (and the voice's card and report reuse)."""
    corpus = load_corpus(path)
    chars = corpus.chars_by_source()
    total = sum(chars.values())
    eff = corpus.effective_shares()
    warnings: list[str] = []
    per_source = {}
    unshowable: dict[str, dict[str, int]] = {}
    for line in corpus.lines:
        for c in line.text:
            if c not in OLED_CHARSET:
                unshowable.setdefault(c, {}).setdefault(line.source, 0)
                unshowable[c][line.source] += 1
    for name, src in corpus.sources.items():
        lines = [ln for ln in corpus.lines if ln.source == name]
        moods: dict[str, int] = {}
        for ln in lines:
            for m in (ln.moods or ("(any)",)):
                moods[m] = moods.get(m, 0) + 1
        per_source[name] = {"lines": len(lines), "chars": chars[name],
                            "share_chars": chars[name] / total if total else 0.0,
                            "weight": src.weight, "share_effective": eff[name],
                            "moods": moods, "kind": src.kind,
                            "words": len(corpus.word_lists.get(name, ())), **src.to_json()}
        if not src.consent.strip():
            warnings.append(f"source {name!r} has no consent recorded (--consent \"how it was "
                            f"given\")")
        if not src.licence.strip():
            warnings.append(f"source {name!r} has no licence: it cannot be shipped")
        elif src.licence not in SHIPPABLE_LICENCES:
            warnings.append(f"source {name!r} has licence {src.licence!r}, not one known to allow "
                            f"shipping ({', '.join(SHIPPABLE_LICENCES)}): check before shipping")
        if src.kind == "words":
            if not corpus.word_lists.get(name):
                warnings.append(f"word list {name!r} has no words yet ({root_file(corpus, src)})")
        elif not lines:
            warnings.append(f"source {name!r} has no lines (lanthorn voice import)")
        elif src.weight == 0:
            warnings.append(f"source {name!r} has weight 0: the voice will not learn from it")
        bad_tags = sorted({t for ln in lines for t in moods_of(ln.tags)[1]})
        if bad_tags:
            warnings.append(f"source {name!r} uses unknown tag(s) {', '.join(bad_tags)} "
                            f"(ignored; tags are moods or gestures)")
    if unshowable:
        shown = ", ".join(f"{c!r} x{sum(v.values())} ({', '.join(v)})"
                          for c, v in sorted(unshowable.items())[:12])
        warnings.append(f"{len(unshowable)} character(s) the OLED font cannot show are left out "
                        f"of training: {shown}")
    return {"path": str(corpus.path), "sources": per_source, "lines": len(corpus.lines),
            "chars": total, "words": len(corpus.words()), "unshowable": {c: v for c, v in sorted(unshowable.items())},
            "warnings": warnings}


def root_file(corpus: Corpus, src: TextSource) -> Path:
    return corpus.path / src.file


# ----------------------------------------------------------------------------- examples

def format_summary(info: dict) -> str:
    """``lanthorn voice info``'s text for :func:`summarize`'s figures."""
    lines = [f"voice corpus {info['path']}: {info['lines']} lines, {info['chars']} characters, "
             f"{info.get('words', 0)} words the voice may write (the only ones it can)", "",
             "source          lines   chars  share(chars)  weight  effective  licence       consent"]
    for s, v in info["sources"].items():
        lines.append(f"{s:<15}{v['lines']:6d}{v['chars']:8d}{100 * v['share_chars']:12.1f}% "
                     f"{v['weight']:7.2f}{100 * v['share_effective']:10.1f}%  "
                     f"{v['licence'] or 'NONE':<13} {v['consent'] or 'NONE'}")
    lines += ["", "lines per mood (untagged lines speak for every mood):"]
    for s, v in info["sources"].items():
        if v.get("kind") == "words":
            lines.append(f"  {s}: a word list of {v['words']} words (joins the lexicon, no lines)")
        else:
            lines.append(f"  {s}: " + ", ".join(f"{m} {n}" for m, n in v["moods"].items()))
    if not info["unshowable"]:
        lines += ["", "every character used can be shown on the OLED"]
    lines += [f"warning: {warning}" for warning in info["warnings"]]
    return "\n".join(lines) + "\n"


def vocabulary(corpus: Corpus) -> str:
    """The boundary, then every showable character the corpus uses (its word lists'
    included, so that their words can be written), sorted."""
    used = {c for line in corpus.lines for c in line.text if c in OLED_CHARSET}
    used |= {c for ws in corpus.word_lists.values() for w in ws for c in w if c in OLED_CHARSET}
    return "\n" + "".join(sorted(used))


def split_lines(corpus: Corpus, holdout: float = 0.1) -> tuple[list[Line], list[Line]]:
    """(train, held out): every k-th line of each source (k = 1/holdout), at least one per
    source with three or more lines. Deterministic, so perplexities are comparable."""
    if holdout <= 0:
        return list(corpus.lines), []
    train, held = [], []
    k = max(2, int(round(1 / holdout)))
    for name in corpus.sources:
        lines = [ln for ln in corpus.lines if ln.source == name]
        for i, ln in enumerate(lines):
            (held if len(lines) >= 3 and i % k == k // 2 else train).append(ln)
    return train, held


def examples(lines: list[Line], spec, sources: dict[str, TextSource] | None = None,
             moods: tuple[str, ...] | None = None):
    """Training examples of ``lines`` for a voice ``spec`` (a VoiceSpec).

    Returns (x int64 [n, 1 + context], y int64 [n], w float32 [n], src list[str], line index
    int64 [n]). A line tagged with moods is one example sequence per mood; an untagged line
    one per mood of the piece, each with 1/len(moods) of the weight, so every mood hears
    it. ``w`` is the source's weight (1 without ``sources``), split that way. A word-window
    spec's contexts are cut as the device cuts them (:func:`lanthorn.device.piece.voice.word_window`)."""
    import numpy as np
    moods = tuple(moods or spec.moods)
    index = {c: i for i, c in enumerate(spec.vocab)}
    n_ctx = spec.context
    sep = spec.separators()
    from lanthorn.device.piece.voice import word_window
    xs, ys, ws, srcs, idx = [], [], [], [], []
    for li, line in enumerate(lines):
        seq = [index[c] for c in line.text if c in index] + [0]
        targets = [m for m in (line.moods or moods) if m in spec.moods]
        if not targets:
            continue
        weight = (sources[line.source].weight if sources else 1.0) / len(targets)
        padded = [0] * n_ctx + seq
        windows = [padded[j:j + n_ctx] for j in range(len(seq))]
        if spec.words:    # what the device's decoder feeds a word-window voice
            windows = [list(word_window(np.array(wd), sep, spec.words)) for wd in windows]
        for mood in targets:
            mt = spec.mood_token(mood)
            for j, tgt in enumerate(seq):
                xs.append([mt] + windows[j])
                ys.append(tgt)
                ws.append(weight)
                srcs.append(line.source)
                idx.append(li)
    return (np.asarray(xs, np.int64).reshape(-1, 1 + n_ctx), np.asarray(ys, np.int64),
            np.asarray(ws, np.float32), srcs, np.asarray(idx, np.int64))
