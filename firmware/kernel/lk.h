/*
 * lk.h -- the lanthorn int8 kernel: a graph interpreter over lanthorn's int8 IR.
 *
 * One portable C11 code base runs the same bits everywhere: the CPython extension on a
 * laptop or a Raspberry Pi (with AVX2 / AVX-VNNI / AVX-512 VNNI / NEON / NEON+dotprod variants
 * chosen at run time),
 * a static test driver under qemu-aarch64, and a microcontroller (Cortex-M) build.
 * The arithmetic is lanthorn.device.int8 (onnxruntime's), reproduced bit for bit; the
 * numpy reference engine (lanthorn.device.engine_ref) is the specification.
 *
 * Rules that keep it portable and exact:
 *   - no malloc, no OS calls, no global mutable state: the caller owns every buffer
 *     (model structs, packed weights, scratch, activation arena);
 *   - float32 only, compiled with -ffp-contract=off and without fast-math; rounding
 *     half to even in the default rounding mode; fmaf only where int8.py emulates an FMA.
 *
 * Life cycle (see README.md):
 *
 *     lk_blob_counts(blob, len, &n_tensors, &n_layers);        // size the struct arrays
 *     lk_model_init(&m, blob, len, tensors, n_tensors, layers, n_layers);
 *     v = lk_best_variant();                                    // or LK_VARIANT_SCALAR
 *     lk_prepare(&m, v, packed_buf, lk_packed_size(&m, v));     // packs weights once
 *     ... arena = m.arena_size bytes (16-aligned), scratch = lk_scratch_size(&m, v) bytes
 *     write inputs at arena + m.tensors[m.inputs[i]].offset
 *     lk_run(&m, arena, scratch);                               // one call, whole graph
 *     read outputs at arena + m.tensors[m.outputs[i]].offset
 *
 * The blob ("LKB1") is the serialized graph, produced by lanthorn.device.engine_c.to_blob
 * from a lanthorn Graph; the model structs point into it (zero copy: on a microcontroller
 * the blob can live in flash). All integers little-endian. Layout:
 *
 *     header   7 x uint32: magic 'LKB1' (0x31424B4C), version (1), n_tensors, n_layers,
 *              n_inputs, n_outputs, arena_size
 *     inputs   n_inputs  x int32 tensor index
 *     outputs  n_outputs x int32 tensor index
 *     tensors  n_tensors x LK_TENSOR_WORDS words: offset, dtype, ndim, shape[LK_MAX_DIMS],
 *              scale (float32 bits), zero_point
 *     layers   n_layers x LK_LAYER_WORDS words: op, n_in, in[LK_MAX_IN], out, kh, kw, sh,
 *              sw, dh, dw, pad_t, pad_l, pad_b, pad_r, groups, act_min, act_max, axis,
 *              count_include_pad, rows, perm[LK_MAX_DIMS], then byte offsets into the
 *              blob (0 = absent) of weight, bias, multiplier, table, tables[LK_MAX_IN]
 *     data     the arrays, each 16-byte aligned, at the offsets above
 *
 * The blob must be 4-byte aligned in memory (16 recommended).
 */
#ifndef LK_H
#define LK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LK_MAGIC 0x31424B4Cu /* "LKB1" */
#define LK_VERSION 1
#define LK_MAX_DIMS 6  /* tensor rank limit (transpose perm length) */
#define LK_MAX_IN 16   /* inputs of one layer (concat) */
#define LK_MAX_IO 16   /* graph inputs / outputs */
#define LK_HEADER_WORDS 7
#define LK_TENSOR_WORDS (5 + LK_MAX_DIMS)
#define LK_LAYER_WORDS (2 + LK_MAX_IN + 1 + 16 + LK_MAX_DIMS + 4 + LK_MAX_IN)

/* Operators, numbered as in lanthorn.device.engine_c.OP_CODES. A final float softmax is
 * not an lk op: the caller applies it to the int8 output (identically for every engine). */
enum lk_op {
    LK_OP_CONV = 1,           /* conv1d/2d, groups, depthwise; fused requant + clamp */
    LK_OP_DENSE = 2,          /* Gemm / MatMul over the last axis */
    LK_OP_MAXPOOL = 3,
    LK_OP_AVGPOOL = 4,        /* QLinearAveragePool (int8 QDQ path rounding) */
    LK_OP_GLOBAL_AVGPOOL = 5, /* QLinearGlobalAveragePool */
    LK_OP_ADD = 6,            /* QLinearAdd (two float32 FMAs), b broadcast on leading axes */
    LK_OP_CONCAT = 7,         /* optional per-input 256-entry requant table */
    LK_OP_RESHAPE = 8,        /* byte copy (a no-op when the planner aliases in and out) */
    LK_OP_TRANSPOSE = 9,
    LK_OP_LUT = 10,           /* y = table[x + 128], or table[c][x + 128] per channel c */
    LK_OP_GATHER = 11,        /* int32 indices -> rows of an int8 [rows, D] table */
    LK_OP_MUL = 12            /* QLinearMul (int32 product, float32 mul + add), b as add */
};

enum lk_dtype { LK_INT8 = 1, LK_INT32 = 2 };

/* Status codes returned by every function that can fail. */
enum lk_status {
    LK_OK = 0,
    LK_ERR_BLOB = -1,      /* not an LKB1 blob, wrong version, or an offset out of range */
    LK_ERR_CAPACITY = -2,  /* caller's struct arrays or buffer too small */
    LK_ERR_OP = -3,        /* unknown operator or unsupported parameters */
    LK_ERR_INDEX = -4,     /* gather index out of range (bad input; nothing else changed) */
    LK_ERR_VARIANT = -5    /* variant not compiled in or not supported by this CPU */
};

/* Kernel variants. SIMD variants compute the identical integers as the scalar one. */
enum lk_variant {
    LK_VARIANT_SCALAR = 0,       /* portable C, the microcontroller path */
    LK_VARIANT_AVX2 = 1,         /* x86-64 with AVX2 (int16 madd) */
    LK_VARIANT_NEON = 2,         /* aarch64 Advanced SIMD (int16 multiply-accumulate) */
    LK_VARIANT_NEON_DOTPROD = 3, /* aarch64 with SDOT (armv8.2-a+dotprod, e.g. Pi 5) */
    LK_VARIANT_AVX_VNNI = 4,     /* x86-64 with AVX-VNNI (256-bit vpdpbusd, e.g. Alder Lake) */
    LK_VARIANT_AVX512_VNNI = 5,  /* x86-64 with AVX-512 VNNI (512-bit vpdpbusd) */
    LK_N_VARIANTS = 6
};

/* An activation tensor: a region of the arena, channels-last, per-tensor quantization. */
typedef struct lk_tensor {
    int32_t offset;               /* byte offset in the arena */
    int32_t dtype;                /* enum lk_dtype */
    int32_t ndim;
    int32_t shape[LK_MAX_DIMS];   /* unused trailing entries are 1 */
    float scale;
    int32_t zero_point;
} lk_tensor;

/* One fused layer. Field meaning per op follows lanthorn.device.graph's docstring. */
typedef struct lk_layer {
    int32_t op;                   /* enum lk_op */
    int32_t n_in;
    int32_t in[LK_MAX_IN];        /* input tensor indices */
    int32_t out;                  /* output tensor index */
    int32_t kh, kw;               /* conv: from weight; pools: kernel */
    int32_t sh, sw, dh, dw;       /* stride, dilation */
    int32_t pad_t, pad_l, pad_b, pad_r;
    int32_t groups;               /* conv */
    int32_t act_min, act_max;     /* fused activation clamp (int8, inclusive) */
    int32_t axis;                 /* concat */
    int32_t count_include_pad;    /* avgpool */
    int32_t rows;                 /* gather: table rows V; lut: C per-channel tables (or 0) */
    int32_t perm[LK_MAX_DIMS];    /* transpose */
    const int8_t *weight;         /* conv [Cout, KH, KW, Cin/groups]; dense [N, K] */
    const int32_t *bias;          /* [Cout] / [N] */
    const float *multiplier;      /* [Cout] / [N], s_in * s_w[c] / s_out as float32 */
    const int8_t *table;          /* lut [256] or [rows = C][256]; gather [rows, D] */
    const int8_t *tables[LK_MAX_IN]; /* concat: per-input requant table or NULL */
    void *packed;                 /* set by lk_prepare: variant-specific weight layout */
} lk_layer;

typedef struct lk_model {
    int32_t n_tensors, n_layers, n_inputs, n_outputs;
    lk_tensor *tensors;
    lk_layer *layers;
    int32_t inputs[LK_MAX_IO];
    int32_t outputs[LK_MAX_IO];
    uint32_t arena_size;          /* bytes of activation memory lk_run needs */
    int32_t variant;              /* set by lk_prepare */
} lk_model;

/* Read the tensor and layer counts of a blob (to size the arrays for lk_model_init). */
int lk_blob_counts(const void *blob, size_t len, int32_t *n_tensors, int32_t *n_layers);

/* Parse a blob into m, using the caller's arrays. Checks every offset and array size (64-bit
 * arithmetic), tensor alignment and overlap, and the value ranges the arithmetic assumes
 * (see README.md): a blob that passes runs without undefined behaviour. */
int lk_model_init(lk_model *m, const void *blob, size_t len, lk_tensor *tensors,
                  int32_t max_tensors, lk_layer *layers, int32_t max_layers);

/* Bytes of packed-weight memory variant v needs (0 for LK_VARIANT_SCALAR). */
size_t lk_packed_size(const lk_model *m, int variant);

/* Select variant v and pack weights into buf (16-aligned, lk_packed_size bytes). */
int lk_prepare(lk_model *m, int variant, void *buf, size_t size);

/* Bytes of scratch memory lk_run needs for the model's variant (may be 0). */
size_t lk_scratch_size(const lk_model *m, int variant);

/* Run every layer in order. arena: m->arena_size bytes, 16-aligned; scratch: see above. */
int lk_run(const lk_model *m, uint8_t *arena, void *scratch);

/* Run-time CPU feature detection (always true for LK_VARIANT_SCALAR). */
int lk_variant_supported(int variant);
int lk_best_variant(void);
const char *lk_variant_name(int variant);  /* "c-scalar", "c-avx2", "c-avx-vnni",
                                               "c-avx512-vnni", "c-neon", "c-neon-dotprod" */

#ifdef __cplusplus
}
#endif
#endif /* LK_H */
