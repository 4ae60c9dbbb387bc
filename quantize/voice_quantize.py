"""Float voice ONNX → int8 ``.lanthorn`` voice bundle, with its tasting notes.

The same path as every lanthorn model: onnxruntime's ``quantize_static`` (QDQ, per-channel,
7-bit weights: :func:`lanthorn.quantize.qdq.quantize_qdq`) calibrated on real
contexts from the corpus, then :func:`~lanthorn.quantize.qdq_import.bundle_from_qdq`. The
bundle is shipped only if lanthorn's engines give onnxruntime's integers on its twin for
every calibration-like context checked, and if a phrase sampled through either gives the
same string.

Tasting notes (in the card and the report) say what the voice is made of and what it
sounds like: the mix (sources, character shares, weights, effective shares, licences),
held-out perplexity per source in float and in int8, sample phrases per mood from the
int8 model with their seeds, the source each sample is nearest to (character trigram
overlap), and the longest stretch of each sample found verbatim in the corpus. A sample
that copies more than :data:`VERBATIM_LIMIT` characters is flagged, in the card too.
"""
from __future__ import annotations

import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanthorn.device.engine import int8
from lanthorn.device.piece.voice import KIND, SAMPLER_PARAMS, Voice, VoiceSpec
from lanthorn.errors import UserError
from lanthorn.quantize.voice_corpus import SHIPPABLE_LICENCES, examples, load_corpus, split_lines, summarize

VERBATIM_LIMIT = 20          # characters copied verbatim before a sample is flagged
SAMPLES_PER_MOOD = 4


def read_voice_onnx(path) -> tuple[object, VoiceSpec, dict]:
    """(ModelProto, spec, arch) of a float voice ONNX written by ``lanthorn voice train``."""
    import onnx
    try:
        m = onnx.load(str(path))
    except FileNotFoundError:
        raise UserError(f"{path}: no such ONNX file") from None
    except Exception as exc:
        raise UserError(f"{path} is not a readable ONNX model ({exc})") from None
    props = {p.key: p.value for p in m.metadata_props}
    if props.get("lanthorn.kind") != KIND:
        raise UserError(f"{path} is not a voice model (no lanthorn.kind=voice metadata); "
                        f"train one with 'lanthorn voice train CORPUS --out voice.onnx'")
    spec = VoiceSpec.from_json(json.loads(props["lanthorn.voice"]))
    return m, spec, json.loads(props.get("lanthorn.arch", "{}"))


def trained_corpus(path) -> str:
    """The corpus folder a voice ONNX was trained on (recorded by 'voice train')."""
    import onnx
    m = onnx.load(str(path), load_external_data=False)
    corpus = {p.key: p.value for p in m.metadata_props}.get("lanthorn.corpus")
    if not corpus:
        raise UserError(f"{path} does not say which corpus it was trained on; give --corpus")
    if not Path(corpus).is_dir():
        raise UserError(f"{path} was trained on the corpus {corpus!r}, which is not found from "
                        f"here; give --corpus FOLDER")
    return corpus


def is_voice_onnx(path) -> bool:
    try:
        read_voice_onnx(path)
        return True
    except UserError:
        return False


def _calibration(x: np.ndarray, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(x), size=min(n, len(x)), replace=False))
    return [{"tokens": x[i][None]} for i in idx]


def output_labels(spec: VoiceSpec) -> tuple[str, ...]:
    """The bundle's labels, one per output: the characters, with the phrase end and the
    space named so that 'lanthorn inspect' and 'model info' can print them on one line."""
    return ("<end>",) + tuple("<space>" if c == " " else c for c in spec.vocab[1:])


def ort_voice_step(bundle):
    """``step(tokens int32 [1+context]) -> int8 logits`` computed by onnxruntime on the twin.

    The graph onnxruntime runs must stay the graph users run: exposing the pre-softmax int8
    tensor as an extra output can make onnxruntime run the last Gemm in float instead of
    fusing it. So the twin is cut after the DequantizeLinear that feeds the final Softmax
    (that tensor becomes the only output, as in a model without a softmax) and the int8
    logits are recovered exactly from it: ``q = rint(y / s) + z``, exact because
    ``y = float32(q - z) * s``."""
    import onnx

    from lanthorn.device.engine.graph import raw_outputs
    from lanthorn.quantize.ort_oracle import ort_session
    m = onnx.load_from_string(bundle.twin)
    g = m.graph
    softmax = [n for n in g.node if n.op_type == "Softmax"]
    if softmax:   # drop the Softmax and what follows it (its own Q/DQ pair)
        src, dropped = softmax[-1].input[0], set(softmax[-1].output)
        doomed = [softmax[-1]]
        for n in g.node:
            if any(i in dropped for i in n.input):
                doomed.append(n)
                dropped.update(n.output)
        for n in doomed:
            g.node.remove(n)
        del g.output[:]
        g.output.append(onnx.helper.make_tensor_value_info(src, onnx.TensorProto.FLOAT, None))
    sess = ort_session(m.SerializeToString())
    name = g.input[0].name
    t = bundle.graph.tensors[raw_outputs(bundle.graph)[0]]

    def step(tokens):
        y = sess.run(None, {name: np.asarray(tokens, np.int64).reshape(1, -1)})[0].reshape(-1)
        return int8.quantize(y, t.scale, t.zero_point)
    return step


def check_twin(bundle, feeds: list[dict]) -> int:
    """Every int8 logit of lanthorn's engines equals onnxruntime's; returns elements checked."""
    from lanthorn.quantize.ort_oracle import engines_vs_ort
    checked, mismatch = engines_vs_ort(bundle, feeds)
    if mismatch:
        backend, n = mismatch
        raise UserError(f"the {backend} engine's int8 logits differ from onnxruntime's on the "
                        f"twin ({n} elements): not writing this voice")
    return checked


# ----------------------------------------------------------------------------- tasting

def trigrams(text: str) -> set[str]:
    t = f"  {text.lower()} "
    return {t[i:i + 3] for i in range(len(t) - 2)}


def nearest_source(text: str, corpus) -> dict:
    """The source whose lines share most character trigrams with ``text`` (by the fraction
    of the sample's trigrams found in that source), with every source's score."""
    grams = trigrams(text)
    scores = {}
    for name in corpus.sources:
        pool = set()
        for ln in corpus.lines:
            if ln.source == name:
                pool |= trigrams(ln.text)
        scores[name] = round(len(grams & pool) / max(len(grams), 1), 3)
    best = max(scores, key=lambda s: (scores[s], s)) if scores else None
    return {"source": best, "scores": scores}


def longest_verbatim(text: str, corpus) -> dict:
    """The longest substring of ``text`` that appears verbatim in a corpus line."""
    best = {"chars": 0, "text": "", "source": None}
    for ln in corpus.lines:
        a, b = text, ln.text
        # dynamic programming over common suffixes: tiny strings, fine in Python
        prev = [0] * (len(b) + 1)
        for i in range(1, len(a) + 1):
            cur = [0] * (len(b) + 1)
            ai = a[i - 1]
            for j in range(1, len(b) + 1):
                if ai == b[j - 1]:
                    cur[j] = prev[j - 1] + 1
                    if cur[j] > best["chars"]:
                        best = {"chars": cur[j], "text": a[i - cur[j]:i], "source": ln.source}
            prev = cur
    return best


def phrases(voice: Voice, params: dict, moods=None, per_mood: int = SAMPLES_PER_MOOD,
            seed: int = 0):
    """(mood, seed, phrase) for each mood (default: all the voice's) with seeds seed,
    seed+1, ...: what the piece would say, sampled with the parameters it would use."""
    for mood in moods or voice.spec.moods:
        for k in range(per_mood):
            yield mood, seed + k, voice.speak(mood, seed + k, params)


def taste(voice: Voice, corpus, params: dict, moods=None, per_mood: int = SAMPLES_PER_MOOD,
          seed: int = 0) -> list[dict]:
    """Sample phrases per mood with seeds seed, seed+1, ... and describe each."""
    out = []
    for mood, s, ph in phrases(voice, params, moods, per_mood, seed):
        near = nearest_source(ph.text, corpus)
        verb = longest_verbatim(ph.text, corpus)
        out.append({"mood": mood, "seed": s, "text": ph.text, "nearest_source": near["source"],
                    "source_scores": near["scores"], "verbatim_chars": verb["chars"],
                    "verbatim_text": verb["text"], "verbatim_source": verb["source"],
                    "copied": verb["chars"] > VERBATIM_LIMIT})
    return out


def _ppl(prob_fn, spec: VoiceSpec, lines) -> dict:
    x, y, _, srcs, _ = examples(lines, spec)
    nll = np.empty(len(y))
    for i in range(len(y)):
        p = float(np.asarray(prob_fn(x[i])).reshape(-1)[y[i]])
        nll[i] = -math.log(max(p, 1e-12))
    out = {"all": float(math.exp(nll.mean())) if nll.size else None}
    for s in sorted(set(srcs)):
        m = np.array([t == s for t in srcs])
        out[s] = float(math.exp(nll[m].mean()))
    return out


def quantize_voice(float_onnx, corpus_dir, out, name: str | None = None, seed: int = 0,
                   n_calib: int = 256, report_dir=None, card_extra: dict | None = None,
                   log=print, signing_key=None) -> dict:
    """Quantize, verify against onnxruntime, taste, write the bundle; returns the report.
    ``signing_key`` (an Ed25519 key, :mod:`lanthorn.device.engine.signing`) signs it, so a locked
    object installs it like a signed gesture model."""
    from lanthorn.device.engine.bundle import read_bundle, write_bundle
    from lanthorn.device.engine.graph import graph_macs

    t0 = time.perf_counter()
    fmodel, spec, arch = read_voice_onnx(float_onnx)
    corpus = load_corpus(corpus_dir)
    feeds = _calibration_feeds(corpus, corpus_dir, spec, n_calib, seed, log)
    info = summarize(corpus_dir)
    mix = _mix(info)
    licences = sorted({v["licence"] or "none" for v in mix.values()})
    bundle = _quantize(float_onnx, feeds, spec, {"corpus": str(corpus_dir), "sources": mix,
                                                 "licences": licences})
    bundle.lexicon = lexicon_bytes(corpus)
    macs = graph_macs(bundle.graph)
    checked = check_twin(bundle, feeds[:64])
    model, ours, params = _same_phrases_both_ways(bundle, spec, seed)
    ppl_float, ppl_int8 = _perplexities(fmodel, model, spec, corpus)
    from lanthorn.quantize.voice_taste import panel
    tasting = _Tasting(spec, arch, macs, mix, licences, ppl_float, ppl_int8, params,
                       taste(ours, corpus, params, seed=seed),
                       panel(ours, corpus, params, seed=seed, perplexity=False))
    bundle.card = _card(tasting, name or Path(out).stem, card_extra)
    write_bundle(bundle, out, signing_key)
    report = _report(tasting, out, read_bundle(out), bundle.card["mix"], info["warnings"],
                     checked, t0)
    if report_dir:
        write_report(report, Path(report_dir))
    ppl = (f"held-out perplexity float {ppl_float['all']:.2f} -> int8 {ppl_int8['all']:.2f}"
           if ppl_float["all"] else "no held-out lines")
    log(f"wrote {out}: {macs:,} MACs/char, {ppl}; {checked} logits identical to "
        f"onnxruntime; longest verbatim copy in samples {tasting.longest} chars")
    return report


def lexicon_bytes(corpus) -> bytes:
    """The trie of every word of ``corpus`` (its lines' and word lists'), as the bundle's
    lexicon section stores it: the only words the voice may write."""
    from lanthorn.device.engine.lexicon import Trie, encode
    words = corpus.words()
    if not words:
        raise UserError(f"{corpus.path}: the corpus has no words for the voice to say")
    return encode(Trie(words))


def _calibration_feeds(corpus, corpus_dir, spec: VoiceSpec, n_calib: int, seed: int,
                       log) -> list[dict]:
    """Calibration contexts from the corpus the voice is shipped with (which may have
    changed since training: a character it no longer uses is noted, not refused)."""
    missing = sorted(set(spec.vocab[1:]) - {c for ln in corpus.lines for c in ln.text})
    if missing:
        log(f"note: the corpus no longer uses {''.join(missing)!r}, which the model knows")
    x, _, _, _, _ = examples(corpus.lines, spec)
    if not len(x):
        raise UserError(f"{corpus_dir}: no lines to calibrate the voice on")
    return _calibration(x, n_calib, seed)


def _mix(info: dict) -> dict:
    """Per source, the figures the tasting notes show: sizes, shares, weight, and who gave
    it under what licence and consent (the provenance travels with the bundle)."""
    return {s: {k: v[k] for k in ("lines", "chars", "share_chars", "weight", "share_effective",
                                  "licence", "author", "consent", "date")}
            for s, v in info["sources"].items()}


def _quantize(float_onnx, feeds: list[dict], spec: VoiceSpec, provenance: dict):
    """The bundle, by the one quantize_static path every lanthorn model takes (its card is
    written once the voice has been checked and tasted)."""
    from lanthorn.quantize.qdq import quantize_qdq
    from lanthorn.quantize.qdq_import import bundle_from_qdq
    with tempfile.TemporaryDirectory() as tmp:
        qdq = quantize_qdq(float_onnx, Path(tmp) / "voice.qdq.onnx", feeds)
        return bundle_from_qdq(qdq, labels=output_labels(spec), card={}, provenance=provenance)


def _same_phrases_both_ways(bundle, spec: VoiceSpec, seed: int):
    """Sample the same phrase through our engine and through onnxruntime on the twin: equal
    logits are not enough if the sampler reads them differently. Returns (our int8 model,
    its Voice, the sampler parameters the piece would use)."""
    from lanthorn.device.engine.runtime import load
    from lanthorn.device.piece.params import ParamStore
    model = load(bundle)
    bundle.card = {"kind": KIND, "voice": spec.to_json()}   # Voice() needs the spec first
    ours, theirs = Voice(model), Voice(model, step=ort_voice_step(bundle))
    params = ParamStore().snapshot()
    for mood in spec.moods[:2]:
        a = ours.speak(mood, seed, params)
        b = theirs.speak(mood, seed, params)
        if a.text != b.text:
            raise UserError(f"a phrase sampled through lanthorn ({a.text!r}) differs from "
                            f"onnxruntime's ({b.text!r}): not writing this voice")
    return model, ours, params


def _perplexities(fmodel, model, spec: VoiceSpec, corpus) -> tuple[dict, dict]:
    """Held-out perplexity per source, float (onnxruntime on the float model) and int8 (our
    engine): what quantization cost, source by source."""
    from lanthorn.quantize.ort_oracle import ort_session
    _, held = split_lines(corpus, 0.1)
    fsess = ort_session(fmodel.SerializeToString())
    ppl_float = _ppl(lambda t: fsess.run(None, {"tokens": t[None]})[0], spec, held)
    ppl_int8 = _ppl(lambda t: model(t.astype(np.int32)), spec, held)
    return ppl_float, ppl_int8


@dataclass
class _Tasting:
    """What the voice is made of and sounds like: the figures both the card (which travels
    with the bundle) and the report carry."""

    spec: VoiceSpec
    arch: dict
    macs: int
    mix: dict
    licences: list[str]
    ppl_float: dict
    ppl_int8: dict
    params: dict
    samples: list[dict]
    panel: dict            # the tasting panel (quantize/voice_taste.py)

    @property
    def longest(self) -> int:
        return max((s["verbatim_chars"] for s in self.samples), default=0)

    @property
    def copies(self) -> int:
        """Samples copying more than VERBATIM_LIMIT characters of a corpus line."""
        return len([s for s in self.samples if s["copied"]])


def _card(t: _Tasting, name: str, card_extra: dict | None) -> dict:
    """The voice's card: what it is, what it may be used for and its limits, its licence,
    and the tasting figures rounded for reading (``card_extra`` last: it may override)."""
    from lanthorn.quantize.voice_taste import card_figures
    spec, arch, macs, licences = t.spec, t.arch, t.macs, t.licences
    reads = (f"the word being written and the {spec.words} word(s) before it, within the last "
             f"{spec.context} characters" if spec.words else f"the last {spec.context} characters")
    words = t.panel["lexicon_words"]
    return {"name": name, "kind": KIND, "voice": spec.to_json(),
            "description": "the piece's voice: a character-level language model that writes a "
                           "short phrase for the OLED in the current mood",
            "architecture": f"MLP over the mood and {reads}: "
                            f"embedding {arch.get('dim')} -> dense {arch.get('hidden')} + ReLU -> "
                            f"{len(spec.vocab)} characters; {macs:,} MACs per character",
            "intended_use": "short phrases on the 128x64 OLED, one per mood change",
            "limitations": f"knows only its corpus: a few hundred short lines; it cannot be "
                           f"prompted, and every word it writes is one of its corpus's {words} "
                           f"words (decoding is constrained to a trie of them, stored in the "
                           f"bundle): it cannot say a word the artist did not give it",
            "tasting_panel": card_figures(t.panel),
            "licence": " AND ".join(licences),
            "shippable": all(lic in SHIPPABLE_LICENCES for lic in licences),
            "mix": {s: {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items()}
                    for s, m in t.mix.items()},
            "macs_per_char": macs,
            "perplexity_float": {k: round(v, 3) for k, v in t.ppl_float.items() if v},
            "perplexity_int8": {k: round(v, 3) for k, v in t.ppl_int8.items() if v},
            "sampler": {k: t.params[k] for k in SAMPLER_PARAMS},
            "lexicon_words": words,
            "samples": [{k: s[k] for k in ("mood", "seed", "text", "nearest_source",
                                           "verbatim_chars")} for s in t.samples],
            "verbatim_limit": VERBATIM_LIMIT,
            "longest_verbatim_chars": t.longest,
            "copies_beyond_limit": t.copies,
            **(card_extra or {})}


def _report(t: _Tasting, out, shipped, mix: dict, warnings: list, checked: int,
            t0: float) -> dict:
    """The full figures (unrounded) of the bundle as written, for voice-report.json and
    the caller; ``shipped`` is the bundle read back, so its hash and signature are the
    file's."""
    return {"bundle": str(out), "file_sha256": shipped.file_sha256,
            "internal_digest": shipped.sha256, "bundle_bytes": Path(out).stat().st_size,
            "signed_by": (shipped.signature[0].hex() if shipped.signature else None),
            "macs_per_char": t.macs, "arch": t.arch, "vocab": t.spec.vocab,
            "moods": list(t.spec.moods), "context": t.spec.context, "mix": mix,
            "licences": t.licences, "warnings": warnings,
            "perplexity_float": t.ppl_float, "perplexity_int8": t.ppl_int8,
            "matches_onnxruntime": {"elements_checked": checked, "mismatches": 0,
                                    "phrases_identical": True},
            "samples": t.samples, "panel": t.panel, "verbatim_limit": VERBATIM_LIMIT,
            "longest_verbatim_chars": t.longest, "copies_beyond_limit": t.copies,
            "seconds": round(time.perf_counter() - t0, 2)}


def tasting_markdown(report: dict) -> str:
    """The tasting notes as Markdown (the report, and ``lanthorn voice taste``)."""
    w = []
    w.append("## The mix\n")
    w.append("| source | lines | characters | share (chars) | weight | effective share | licence |")
    w.append("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for s, m in report["mix"].items():
        w.append(f"| {s} | {m['lines']} | {m['chars']} | {100 * m['share_chars']:.1f}% | "
                 f"{m['weight']:g} | {100 * m['share_effective']:.1f}% | {m['licence'] or 'none'} |")
    w.append("")
    w.append("## Perplexity on held-out lines (per character; lower is better)\n")
    w.append("| source | float | int8 |")
    w.append("| --- | ---: | ---: |")
    for s, v in report["perplexity_float"].items():
        i8 = report["perplexity_int8"].get(s)
        w.append(f"| {s} | {v:.2f} | {i8:.2f} |" if v and i8 else f"| {s} | - | - |")
    w.append(f"\n{report['macs_per_char']:,} MACs per character.\n")
    w.append("## Samples from the int8 model\n")
    w.append("| mood | seed | phrase | nearest source | longest verbatim |")
    w.append("| --- | ---: | --- | --- | --- |")
    for s in report["samples"]:
        flag = " **copied**" if s["copied"] else ""
        w.append(f"| {s['mood']} | {s['seed']} | {s['text'] or '(empty)'} | {s['nearest_source']} | "
                 f"{s['verbatim_chars']} chars ({s['verbatim_source']}){flag} |")
    w.append("")
    n = report["copies_beyond_limit"]
    w.append(f"Longest verbatim overlap with the corpus: {report['longest_verbatim_chars']} "
             f"characters. " + (f"{n} sample(s) copy more than {report['verbatim_limit']} "
                                f"characters of a corpus line verbatim." if n else
                                f"No sample copies more than {report['verbatim_limit']} "
                                f"characters verbatim."))
    return "\n".join(w) + "\n"


def write_report(report: dict, directory: Path, with_json: bool = True) -> None:
    """voice-report.md (and voice-report.json) in ``directory``."""
    from lanthorn.device.storage.atomic import atomic_write_text
    directory.mkdir(parents=True, exist_ok=True)
    if with_json:
        atomic_write_text(directory / "voice-report.json", json.dumps(report, indent=2) + "\n")
    head = (f"# Voice: tasting notes\n\nBundle `{Path(report['bundle']).name}` "
            f"(file sha256 {report['file_sha256'][:16]}..., internal digest "
            f"{report['internal_digest'][:16]}...), licence {', '.join(report['licences'])}.\n"
            f"Every int8 logit checked ({report['matches_onnxruntime']['elements_checked']}) is "
            f"identical to onnxruntime on the bundle's QDQ twin, and phrases sampled through "
            f"either are the same.\n\n")
    warn = "".join(f"- warning: {x}\n" for x in report["warnings"])
    from lanthorn.quantize.voice_taste import panel_markdown
    body = panel_markdown(report["panel"]) + "\n" if report.get("panel") else ""
    atomic_write_text(directory / "voice-report.md", head + (warn + "\n" if warn else "")
                      + body + tasting_markdown(report) + sweep_markdown(report))


def _why_picked(best: dict, rows: list[dict]) -> str:
    others = sorted((r for r in rows if r is not best), key=lambda r: -r["score"])
    tie = others and others[0]["score"] == best["score"]
    return (f"\n{best['arch']} ({best['epochs']} epochs) won with score {best['score']:.3f}"
            + (f", ahead of {others[0]['arch']} ({others[0]['epochs']} epochs, "
               f"{others[0]['score']:.3f})" if others else "")
            + (f": a tie{' (every target met by both)' if best['score'] >= 1 else ''}, "
               f"broken by fewer MACs per character "
               f"({best['macs_per_char']:,} against {others[0]['macs_per_char']:,})"
               if tie else "")
            + ". Perplexity is shown, not obeyed: the lowest belongs to a model that babbles.")


def sweep_markdown(report: dict) -> str:
    """How the voice was chosen (when the report carries the sweep): every candidate's
    tasting panel, perplexity and cost, and why the pick won."""
    rows = report.get("sweep")
    if not rows:
        return ""
    timed = all("seconds" in r for r in rows)   # a committed report carries no timings
    w = ["\n## Candidates, by tasting\n",
         f"Each candidate trained on the same split and seed and tasted with the device's "
         f"decoder ({rows[0].get('phrases', '')} phrases each); picked: "
         f"{report.get('pick_rule', '')}.\n",
         "| candidate | epochs | MACs per character | corpus words | new | word pairs | "
         "complete | mood | held-out perplexity (float) | score |" + (" training s |" if timed else ""),
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
         + (" ---: |" if timed else "")]
    best = max(rows, key=lambda r: (r.get("score", 0), -r["macs_per_char"]))
    for r in rows:
        secs = f" {r['seconds']} |" if timed else ""
        if "score" not in r:    # a report from before the panel: perplexity only
            w.append(f"| {r['arch']} | | {r['macs_per_char']:,} | | | | | | "
                     f"{r['perplexity']:.2f} | |{secs}")
            continue
        mark = " **(picked)**" if r is best else ""
        w.append(f"| {r['arch']}{mark} | {r['epochs']} | {r['macs_per_char']:,} | "
                 + " | ".join(f"{100 * r[k]:.0f}%" for k in ("corpus_words", "new", "pairs",
                                                              "complete", "mood"))
                 + f" | {r['perplexity']:.2f} | {r['score']:.3f} |{secs}")
    if "score" in best:
        w.append(_why_picked(best, rows))
    return "\n".join(w) + "\n"
