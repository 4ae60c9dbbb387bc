"""Write a bundle as C for a microcontroller: weights in flash, a static arena, no malloc.

The generator is :mod:`lanthorn.quantize.export_c` (a laptop tool: it runs the reference
engine for the test vectors); this module parses the options and prints the summary.
"""
from __future__ import annotations

from lanthorn.quantize import export_c


def add_arguments(parser):
    parser.add_argument("bundle", help="a .lanthorn file")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="directory for model.c/model.h and the test vectors (created)")
    parser.add_argument("--vectors", type=int, default=16, metavar="N",
                        help="number of test vectors (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random test inputs")
    parser.add_argument("--dataset", metavar="DIR",
                        help="take real sensor windows (one per label, in turn) from this dataset "
                             "as the first test vectors; the device quantizes them itself")
    parser.add_argument("--with-kernel", action="store_true",
                        help="also copy the portable kernel sources (lk.h, lk_*.c) into DIR, so the "
                             "folder builds on its own (an Arduino sketch, a PlatformIO lib)")
    parser.add_argument("--prefix", default="model", metavar="NAME",
                        help="C identifier prefix of the API (default: model → model_run())")


def run(args) -> int:
    info = export_c.export_c(args.bundle, args.out, args.vectors, args.seed, args.prefix, args.dataset,
                    args.with_kernel)
    print(f"wrote {args.out}/{info['prefix']}.c, {info['prefix']}.h, test_vectors.c/.h "
          f"({info['vectors']} vectors, {info['vectors_from_dataset']} of them real windows)")
    print(f"flash: {info['blob_bytes']:,} bytes of graph + weights; RAM: "
          f"{info['arena_bytes']:,} bytes of arena, {info['n_layers']} layers, "
          f"{info['n_tensors']} tensors")
    if info["kernel_files"]:
        print(f"kernel sources copied ({', '.join(info['kernel_files'])}): compile every .c "
              "in the folder with -ffp-contract=off (no -ffast-math)")
    print("build and run on Cortex-M under qemu: make -C firmware/mcu MODEL=" + str(args.out))
    return 0
