"""`lanthorn voice`: curate the voice's text, train it, quantize it, taste it."""
from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path

from lanthorn.commands._options import add_provenance


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    _corpus_arguments(sub)
    _model_arguments(sub)


def _corpus_arguments(sub) -> None:
    p = sub.add_parser("add-source", help="declare a text source: author, consent, licence, weight")
    p.add_argument("corpus", help="corpus folder (created if missing)")
    add_provenance(p, "written for this piece", "written")
    p.add_argument("--weight", type=float, default=1.0,
                   help="how strongly it flavours the voice, per character (0.05 = a hint)")
    p.add_argument("--replace", action="store_true", help="update an existing source's details")
    p.add_argument("--kind", choices=("lines", "words"), default="lines",
                   help="lines (phrases to learn from, the default) or words (a word list: its "
                        "words join the only words the voice may write, without training lines)")

    p = sub.add_parser("import", help="add plain text to a source: one phrase a line, or paragraphs")
    p.add_argument("file", help="UTF-8 text file")
    p.add_argument("--corpus", "--data", dest="corpus", required=True, help="corpus folder")
    p.add_argument("--source", required=True, help="source (declared with 'voice add-source')")
    p.add_argument("--paragraphs", action="store_true",
                   help="the file is prose: split paragraphs into sentences")
    p.add_argument("--tags", default="", help="moods or gestures these lines were written for, "
                   "comma-separated (e.g. calm,shy)")

    p = sub.add_parser("info", help="shares by characters and by weight, licence and consent "
                                    "warnings, characters the OLED cannot show")
    p.add_argument("corpus", help="corpus folder")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def _model_arguments(sub) -> None:
    p = sub.add_parser("train", help="train the voice on a corpus and export float ONNX")
    p.add_argument("corpus", help="corpus folder")
    p.add_argument("--out", required=True, help="float ONNX file to write")
    p.add_argument("--epochs", type=int, help="training epochs (default: the shipped voice's, "
                   "or the sweep's pick)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--context", type=int, help="characters of history (default: the sweep's pick)")
    p.add_argument("--hidden", type=int, help="hidden units")
    p.add_argument("--dim", type=int, help="embedding size")
    p.add_argument("--words", type=int, help="word window: read only the word being written and "
                   "this many words before it (0: the whole character context)")
    p.add_argument("--sweep", action="store_true",
                   help="first compare the candidates by tasting them (the tasting panel, "
                        "held-out perplexity, MACs per character) and train the one it picks")

    p = sub.add_parser("quantize", help="float voice ONNX -> int8 .lanthorn voice bundle with "
                                        "tasting notes (checked against onnxruntime)")
    p.add_argument("model", help="float voice ONNX from 'voice train'")
    p.add_argument("--corpus", "--data", dest="corpus",
                   help="the corpus it was trained on (default: the one recorded in the model)")
    p.add_argument("--out", required=True, help="voice bundle to write (.lanthorn)")
    p.add_argument("--name", help="name in the card (default: from --out)")
    p.add_argument("--seed", type=int, default=0, help="first sample seed of the tasting notes")
    p.add_argument("--report", metavar="DIR", help="write voice-report.md and voice-report.json")
    from lanthorn.commands._options import add_signing_arguments
    add_signing_arguments(p)

    p = sub.add_parser("taste", help="speak with a voice bundle: phrases per mood, with seeds; "
                                     "with --corpus, the tasting panel")
    p.add_argument("bundle", help="voice bundle (.lanthorn)")
    p.add_argument("--mood", action="append", help="mood(s) to sample (default: all)")
    p.add_argument("-n", type=int, help="phrases per mood (default 4; with --corpus, the "
                                        "panel's 80)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--corpus", help="the tasting panel against this corpus: corpus words, new "
                   "phrases, corpus word pairs, complete phrases, mood legibility, perplexity")
    p.add_argument("--phrases", action="store_true",
                   help="with --corpus, also list every phrase with its nearest source")
    p.add_argument("--json", action="store_true", help="with --corpus: the panel as JSON")



def run(args) -> int:
    return {"add-source": add_source_cmd, "import": import_cmd, "info": info_cmd,
            "train": train_cmd, "quantize": quantize_cmd, "taste": taste_cmd}[args.action](args)


def add_source_cmd(args) -> int:
    from lanthorn.quantize.voice_corpus import TextSource, add_source
    src = add_source(args.corpus, TextSource(
        args.name, author=args.author, consent=args.consent, licence=args.licence,
        date=args.date or datetime.date.today().isoformat(), notes=args.notes,
        weight=args.weight, kind=args.kind), replace=args.replace)
    if src.kind == "words":
        print(f"declared word list {src.name!r} in {Path(args.corpus) / 'manifest.json'}: write "
              f"its words (spaces, commas or new lines) into {Path(args.corpus) / src.file}; "
              f"they join the words the voice may write at the next 'voice quantize'")
        return 0
    print(f"{'updated' if args.replace else 'declared'} source {src.name!r} (weight "
          f"{src.weight:g}) in {Path(args.corpus) / 'manifest.json'}; add text with "
          f"'lanthorn voice import FILE --corpus {args.corpus} --source {src.name}'")
    if not src.consent:
        print("warning: no consent recorded for this source (--consent \"how it was given\")")
    if not src.licence:
        print("warning: no licence recorded: a voice trained on it cannot be shipped")
    return 0


def import_cmd(args) -> int:
    from lanthorn.quantize.voice_corpus import import_text
    tags = tuple(t.strip() for t in args.tags.split(",") if t.strip())
    r = import_text(args.corpus, args.source, args.file, paragraphs=args.paragraphs, tags=tags)
    print(f"imported {r['phrases']} phrases from {r['file']} into source {args.source!r}"
          + (f" (tagged {', '.join(tags)})" if tags else ""))
    return 0


def info_cmd(args) -> int:
    from lanthorn.quantize.voice_corpus import format_summary, summarize
    info = summarize(args.corpus)
    print(json.dumps(info, indent=2, ensure_ascii=False) if args.json else format_summary(info),
          end="\n" if args.json else "")
    return 0


def train_cmd(args) -> int:
    from lanthorn.errors import UserError
    from lanthorn.host import voice_train as vt
    if args.epochs is not None and args.epochs < 1:
        raise UserError("--epochs must be at least 1")
    arch, sweep, picked_epochs = vt.choose_arch(
        args.corpus, {k: getattr(args, k) for k in vt.ARCH_BOUNDS}, args.sweep, args.seed)
    epochs = args.epochs or picked_epochs or vt.DEFAULT_EPOCHS
    figures = vt.train_voice(args.corpus, args.out, arch, epochs=epochs, seed=args.seed)
    if sweep:
        figures["sweep"] = sweep
    Path(args.out).with_suffix(".train.json").write_text(json.dumps(figures, indent=2) + "\n")
    for s, v in (figures.get("perplexity_float") or {}).items():
        print(f"  held-out perplexity {s}: {v:.2f}")
    return 0


def quantize_cmd(args) -> int:
    import onnxruntime

    from lanthorn.quantize.voice_quantize import quantize_voice, tasting_markdown
    onnxruntime.set_default_logger_severity(3)
    from lanthorn.commands._options import signed_note, signing_key
    from lanthorn.quantize.voice_quantize import read_voice_onnx, trained_corpus
    key = signing_key(args)       # a bad key fails before the work
    read_voice_onnx(args.model)   # a missing or wrong file: one line saying so
    corpus = args.corpus or trained_corpus(args.model)
    report = quantize_voice(args.model, corpus, args.out, name=args.name, seed=args.seed,
                            report_dir=args.report, signing_key=key)
    print(tasting_markdown(report), end="")
    from lanthorn.device.engine.bundle import read_bundle
    print(f"{args.out}{signed_note(read_bundle(args.out))[1:]}")
    return 0


def taste_cmd(args) -> int:
    from lanthorn.device.piece.params import ParamStore
    from lanthorn.device.piece.voice import load_voice
    from lanthorn.errors import UserError
    from lanthorn.quantize.voice_quantize import longest_verbatim, nearest_source, phrases
    voice = load_voice(args.bundle)
    p = ParamStore().snapshot()
    if args.temperature is not None:
        p["voice_temperature"] = args.temperature
    if args.top_k is not None:
        p["voice_top_k"] = args.top_k
    bad = [m for m in args.mood or () if m not in voice.spec.moods]
    if bad:
        raise UserError(f"unknown mood(s) {', '.join(bad)}; this voice knows "
                        f"{', '.join(voice.spec.moods)}")
    if args.n is not None and args.n < 1:
        raise UserError("-n must be at least 1")
    print("every word is the artist's: decoding is constrained to the corpus's "
          f"{len(voice.lexicon)} words" if voice.lexicon is not None else
          "note: this voice has no lexicon (made before it existed): it may invent words")
    if not args.corpus:
        for mood, seed, ph in phrases(voice, p, args.mood, args.n or 4, args.seed):
            print(f"{mood:<10} seed {seed:<4} {ph.text!r}  ({ph.ms:.2f} ms)")
        return 0
    from lanthorn.quantize.voice_corpus import load_corpus
    from lanthorn.quantize.voice_taste import SEEDS, panel, panel_markdown
    corpus = load_corpus(args.corpus)
    if args.phrases:
        for mood, seed, ph in phrases(voice, p, args.mood, args.n or 4, args.seed):
            print(f"{mood:<10} seed {seed:<4} {ph.text!r}  ({ph.ms:.2f} ms)   [nearest "
                  f"{nearest_source(ph.text, corpus)['source']}, verbatim "
                  f"{longest_verbatim(ph.text, corpus)['chars']} chars]")
    result = panel(voice, corpus, p, args.mood, args.n or SEEDS, args.seed)
    print(json.dumps(result, indent=2) if args.json else panel_markdown(result), end="")
    return 0
