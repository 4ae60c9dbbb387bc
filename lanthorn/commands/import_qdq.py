"""Convert an onnxruntime-quantized QDQ ONNX model into a .lanthorn bundle."""
from __future__ import annotations

from pathlib import Path

from lanthorn.commands._options import add_signing_arguments, signed_note, signing_key


def add_arguments(parser):
    parser.add_argument("model", help="QDQ ONNX model (onnxruntime quantize_static, S8S8)")
    parser.add_argument("--out", required=True, help="bundle file to write (.lanthorn)")
    parser.add_argument("--labels", help="comma-separated class names, in output order")
    parser.add_argument("--rate", type=float, help="input frame rate in Hz (sensor windows)")
    parser.add_argument("--channels", help="comma-separated input channel names")
    parser.add_argument("--name", help="model name for the model card")
    add_signing_arguments(parser)


def run(args) -> int:
    from lanthorn.device.engine.bundle import InputSpec, write_bundle
    from lanthorn.errors import UserError
    from lanthorn.quantize.qdq_import import bundle_from_qdq
    from lanthorn.quantize.release_check import release_check
    key = signing_key(args)
    labels = [s.strip() for s in args.labels.split(",")] if args.labels else []
    card = {"name": args.name or Path(args.model).stem.replace(".qdq", "")}
    bundle = bundle_from_qdq(args.model, labels=labels, card=card,
                             provenance={"imported_from": Path(args.model).name})
    spec = bundle.input_spec
    if args.rate is not None or args.channels:
        channels = tuple(c.strip() for c in args.channels.split(",")) if args.channels else spec.channels
        if channels and spec.shape and len(channels) != spec.shape[-1]:
            raise UserError(f"{len(channels)} channel names given but the input has "
                            f"{spec.shape[-1]} channels")
        bundle.input_spec = InputSpec(spec.shape, spec.dtype, channels,
                                      args.rate if args.rate is not None else spec.rate_hz,
                                      spec.window)
    release_check(bundle, what=args.out)     # refuses a real disagreement, notes stock ORT's
    sha = write_bundle(bundle, args.out, key)
    g = bundle.graph
    print(f"wrote {args.out}: {len(g.layers)} layers, input {bundle.input_spec.shape}, "
          f"{len(bundle.labels)} labels, sha256 {sha[:16]}{signed_note(bundle)}")
    return 0
