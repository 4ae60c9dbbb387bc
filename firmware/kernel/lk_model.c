/*
 * lk_model.c -- blob parsing (with bounds checks), weight packing, the layer loop and
 * run-time variant selection.
 */
#include "lk_internal.h"

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)
#endif
#endif

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

static int32_t rdi(const uint8_t *p) { return (int32_t)rd32(p); }

static float rdf(const uint8_t *p)
{
    uint32_t u = rd32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

int lk_blob_counts(const void *blob, size_t len, int32_t *n_tensors, int32_t *n_layers)
{
    const uint8_t *b = (const uint8_t *)blob;
    if (len < 4u * LK_HEADER_WORDS || rd32(b) != LK_MAGIC || rd32(b + 4) != LK_VERSION)
        return LK_ERR_BLOB;
    *n_tensors = rdi(b + 8);
    *n_layers = rdi(b + 12);
    if (*n_tensors < 0 || *n_layers < 0) return LK_ERR_BLOB;
    /* the tables must fit in the blob (64-bit: no wrap), which also bounds what a caller
     * allocates for the struct arrays by the blob's own size */
    if (4u * ((uint64_t)LK_HEADER_WORDS + (uint64_t)*n_tensors * LK_TENSOR_WORDS +
              (uint64_t)*n_layers * LK_LAYER_WORDS) > (uint64_t)len)
        return LK_ERR_BLOB;
    return LK_OK;
}

/* Limits shared with lanthorn.device.graph (Graph.validate checks the same rules, so a
 * bundle passes both or neither): tensor elements, per-inference work, window geometry. */
#define LK_MAX_ELEMENTS (1L << 24)
#define LK_MAX_WORK ((int64_t)1 << 27)
#define LK_MAX_GEOMETRY 65535
#define LK_MAX_ARENA (1u << 28)   /* bytes of activations (graph.MAX_ACTIVATION_BYTES) */

/* Pointer to `count` elements of `elem` bytes at blob offset `off`, or NULL when absent
 * (off == 0). *bad is set when the range leaves the blob or is misaligned. All sizes are
 * 64-bit, so a crafted count cannot wrap the check on a 32-bit microcontroller. */
static const void *arr(const uint8_t *b, size_t len, uint32_t off, uint64_t count, size_t elem,
                       int *bad)
{
    if (off == 0) return NULL;
    if (off % 4 != 0 || off > len || count > (uint64_t)(len - off) / (elem ? elem : 1)) {
        *bad = 1;
        return NULL;
    }
    return b + off;
}

static int check_tensor(const lk_model *m, int32_t i)
{
    return i >= 0 && i < m->n_tensors;
}

static int64_t numel(const lk_tensor *t)
{
    int64_t n = 1;
    for (int d = 0; d < t->ndim; d++) n *= t->shape[d];
    return n;
}

static int64_t window_out(int64_t n, int64_t k, int64_t s, int64_t d, int64_t pa, int64_t pb)
{
    const int64_t span = n + pa + pb - d * (k - 1) - 1;   /* 64-bit: d * k can pass 2**31 */
    return span < 0 ? -1 : span / s + 1;
}

/* Byte ranges [offset, offset + size) of two tensors in the arena intersect. */
static int overlaps(const lk_tensor *a, const lk_tensor *b)
{
    const int64_t ea = (int64_t)a->offset + numel(a) * (a->dtype == LK_INT32 ? 4 : 1);
    const int64_t eb = (int64_t)b->offset + numel(b) * (b->dtype == LK_INT32 ? 4 : 1);
    return a->offset < eb && b->offset < ea;
}

static int finite_positive(float v) { return v > 0.0f && v <= FLT_MAX; }  /* false for NaN */

/* Every one of `out` pooling windows along an axis reaches the input (graph.windows_reach_input):
 * an all-padding window would average nothing (0 / 0) or pool nothing. */
static int windows_reach_input(int64_t n, int64_t k, int64_t s, int64_t d, int64_t pad, int64_t out)
{
    for (int64_t o = 0; o < out; o++) {
        const int64_t start = o * s - pad;
        int64_t lo = start >= 0 ? 0 : (-start + d - 1) / d;
        int64_t hi = n - 1 - start < 0 ? -1 : (n - 1 - start) / d;
        if (hi > k - 1) hi = k - 1;
        if (lo > hi) return 0;
    }
    return 1;
}

/* The value ranges the int8 arithmetic assumes (lanthorn.device.graph._check_arithmetic):
 * a layer's output never overlaps its inputs (a reshape may alias its input exactly),
 * clamps inside int8, finite positive multipliers and QLinearAdd scale ratios within
 * 2**+-14, accumulators that cannot overflow int32 (|bias| + 256 * sum|w| per channel),
 * and the work of one inference bounded. */
static int values_sane(const lk_model *m, const lk_layer *L, int64_t *work)
{
    const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
    for (int k = 0; k < L->n_in; k++) {
        const lk_tensor *I = &m->tensors[L->in[k]];
        if (L->op == LK_OP_RESHAPE && I->offset == Y->offset) continue;
        if (overlaps(I, Y)) return 0;
    }
    if (L->act_min < -128 || L->act_max > 127 || L->act_min > L->act_max) return 0;
    if (L->op == LK_OP_CONV || L->op == LK_OP_DENSE) {
        const int64_t N = Y->shape[Y->ndim - 1];
        const int64_t K = L->op == LK_OP_CONV
            ? (int64_t)L->kh * L->kw * (X->shape[2] / L->groups) : X->shape[X->ndim - 1];
        if (K * 255 * 128 > INT32_MAX) return 0;
        for (int64_t n = 0; n < N; n++) {
            int64_t bound = L->bias[n] < 0 ? -(int64_t)L->bias[n] : L->bias[n];
            if (!finite_positive(L->multiplier[n])) return 0;
            for (int64_t k = 0; k < K; k++) {
                const int32_t w = L->weight[n * K + k];
                bound += 256 * (w < 0 ? -w : w);
            }
            if (bound > INT32_MAX) return 0;
        }
        *work += numel(Y) * K;
    } else if (L->op == LK_OP_MAXPOOL || L->op == LK_OP_AVGPOOL) {
        if (L->op == LK_OP_AVGPOOL && (L->dh != 1 || L->dw != 1)) return 0;
        if (!windows_reach_input(X->shape[0], L->kh, L->sh, L->dh, L->pad_t, Y->shape[0]) ||
            !windows_reach_input(X->shape[1], L->kw, L->sw, L->dw, L->pad_l, Y->shape[1]))
            return 0;
        *work += numel(Y) * L->kh * L->kw;
    } else if (L->op == LK_OP_MUL) {
        const float r = (m->tensors[L->in[0]].scale * m->tensors[L->in[1]].scale) / Y->scale;
        if (!(r > 0.0f && r <= 16384.0f)) return 0;      /* graph.py: |v| < 2**31 */
        *work += 3 * numel(Y);
    } else if (L->op == LK_OP_ADD) {
        const float sy = Y->scale;
        for (int k = 0; k < 2; k++) {
            const float r = m->tensors[L->in[k]].scale / sy;
            if (!(r >= 1.0f / 16384.0f && r <= 16384.0f)) return 0;
        }
        *work += 3 * numel(Y);
    } else if (L->op == LK_OP_GLOBAL_AVGPOOL) {
        if (256 * (int64_t)X->shape[0] * X->shape[1] > INT32_MAX) return 0;
        *work += numel(X);
    } else {
        *work += numel(X) + numel(Y);
    }
    return *work <= LK_MAX_WORK;
}

/* The output shape each op must produce from its inputs (graph.infer_output_shape), so a
 * damaged blob is refused at load instead of making a kernel read or write out of bounds. */
static int shapes_consistent(const lk_model *m, const lk_layer *L)
{
    const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
    if (Y->dtype != LK_INT8 || (L->op != LK_OP_GATHER && X->dtype != LK_INT8)) return 0;
    for (int k = 1; k < L->n_in; k++)
        if (m->tensors[L->in[k]].dtype != LK_INT8) return 0;
    const int32_t geo[] = {L->kh, L->kw, L->sh, L->sw, L->dh, L->dw, L->pad_t, L->pad_l,
                           L->pad_b, L->pad_r, L->groups};
    for (size_t i = 0; i < sizeof geo / sizeof geo[0]; i++)
        if (geo[i] < 0 || geo[i] > LK_MAX_GEOMETRY) return 0;  /* keeps arithmetic in range */
    switch (L->op) {
    case LK_OP_CONV: case LK_OP_MAXPOOL: case LK_OP_AVGPOOL:
        return Y->shape[0] == window_out(X->shape[0], L->kh, L->sh, L->dh, L->pad_t, L->pad_b) &&
               Y->shape[1] == window_out(X->shape[1], L->kw, L->sw, L->dw, L->pad_l, L->pad_r) &&
               Y->shape[0] > 0 && Y->shape[1] > 0 &&
               (L->op == LK_OP_CONV || Y->shape[2] == X->shape[2]);
    case LK_OP_DENSE: {
        const int32_t K = X->shape[X->ndim - 1], N = Y->shape[Y->ndim - 1];
        return K > 0 && N > 0 && numel(X) / K == numel(Y) / N;
    }
    case LK_OP_GLOBAL_AVGPOOL:
        return numel(Y) == X->shape[2] && (int64_t)X->shape[0] * X->shape[1] > 0;
    case LK_OP_ADD: case LK_OP_MUL: {
        const lk_tensor *B = &m->tensors[L->in[1]];
        if (X->ndim != Y->ndim || numel(X) != numel(Y)) return 0;
        for (int d = 0; d < Y->ndim; d++) {
            const int bd = d - (Y->ndim - B->ndim);
            if (X->shape[d] != Y->shape[d]) return 0;
            if (bd >= 0 && B->shape[bd] != 1 && B->shape[bd] != Y->shape[d]) return 0;
        }
        return 1;
    }
    case LK_OP_CONCAT: {
        int64_t along = 0;
        for (int k = 0; k < L->n_in; k++) {
            const lk_tensor *I = &m->tensors[L->in[k]];
            if (I->ndim != Y->ndim) return 0;
            for (int d = 0; d < Y->ndim; d++)
                if (d != L->axis && I->shape[d] != Y->shape[d]) return 0;
            along += I->shape[L->axis];
        }
        return along == Y->shape[L->axis];
    }
    case LK_OP_RESHAPE: case LK_OP_LUT:
        return numel(X) == numel(Y);
    case LK_OP_TRANSPOSE: {
        int seen = 0;
        if (X->ndim != Y->ndim) return 0;
        for (int d = 0; d < Y->ndim; d++) {
            if (Y->shape[d] != X->shape[L->perm[d]] || (seen & (1 << L->perm[d]))) return 0;
            seen |= 1 << L->perm[d];
        }
        return numel(X) == numel(Y);
    }
    case LK_OP_GATHER:
        return Y->ndim == X->ndim + 1 && numel(Y) == numel(X) * Y->shape[Y->ndim - 1];
    default:
        return 0;
    }
}

int lk_model_init(lk_model *m, const void *blob, size_t len, lk_tensor *tensors,
                  int32_t max_tensors, lk_layer *layers, int32_t max_layers)
{
    const uint8_t *b = (const uint8_t *)blob;
    int32_t nt, nl;
    int64_t work = 0;
    if (((uintptr_t)blob & 3u) != 0) return LK_ERR_BLOB;
    if (lk_blob_counts(blob, len, &nt, &nl) != LK_OK) return LK_ERR_BLOB;
    if (nt > max_tensors || nl > max_layers) return LK_ERR_CAPACITY;
    memset(m, 0, sizeof *m);
    m->n_tensors = nt;
    m->n_layers = nl;
    m->n_inputs = rdi(b + 16);
    m->n_outputs = rdi(b + 20);
    m->arena_size = rd32(b + 24);
    m->tensors = tensors;
    m->layers = layers;
    if (m->n_inputs < 0 || m->n_inputs > LK_MAX_IO || m->n_outputs < 0 ||
        m->n_outputs > LK_MAX_IO || m->arena_size > LK_MAX_ARENA)
        return LK_ERR_BLOB;
    const uint64_t need = 4u * ((uint64_t)LK_HEADER_WORDS + (uint64_t)m->n_inputs +
                                (uint64_t)m->n_outputs + (uint64_t)nt * LK_TENSOR_WORDS +
                                (uint64_t)nl * LK_LAYER_WORDS);
    if ((uint64_t)len < need) return LK_ERR_BLOB;
    const uint8_t *p = b + 4 * LK_HEADER_WORDS;
    for (int32_t i = 0; i < m->n_inputs; i++, p += 4) m->inputs[i] = rdi(p);
    for (int32_t i = 0; i < m->n_outputs; i++, p += 4) m->outputs[i] = rdi(p);
    for (int32_t i = 0; i < nt; i++) {
        lk_tensor *t = &tensors[i];
        t->offset = rdi(p); t->dtype = rdi(p + 4); t->ndim = rdi(p + 8);
        for (int d = 0; d < LK_MAX_DIMS; d++) t->shape[d] = rdi(p + 12 + 4 * d);
        t->scale = rdf(p + 12 + 4 * LK_MAX_DIMS);
        t->zero_point = rdi(p + 16 + 4 * LK_MAX_DIMS);
        p += 4 * LK_TENSOR_WORDS;
        if (t->ndim < 0 || t->ndim > LK_MAX_DIMS || (t->dtype != LK_INT8 && t->dtype != LK_INT32))
            return LK_ERR_BLOB;
        int64_t bytes = t->dtype == LK_INT32 ? 4 : 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 1) return LK_ERR_BLOB;
            bytes *= t->shape[d];
            if (bytes > (int64_t)m->arena_size || bytes > 4 * LK_MAX_ELEMENTS) return LK_ERR_BLOB;
        }
        if (t->offset < 0 || (int64_t)t->offset + bytes > (int64_t)m->arena_size ||
            t->offset % 16 != 0)   /* the planner aligns every tensor; SIMD loads rely on it */
            return LK_ERR_BLOB;
        if (!(t->scale >= 0x1p-40f && t->scale <= 0x1p40f) || t->zero_point < -128 ||
            t->zero_point > 127)   /* graph.MIN_SCALE/MAX_SCALE: no inf - inf, no 0 * inf */
            return LK_ERR_BLOB;
    }
    for (int32_t i = 0; i < m->n_inputs; i++)
        if (!check_tensor(m, m->inputs[i])) return LK_ERR_BLOB;
    for (int32_t i = 0; i < m->n_outputs; i++)
        if (!check_tensor(m, m->outputs[i])) return LK_ERR_BLOB;
    for (int32_t li = 0; li < nl; li++) {
        lk_layer *L = &layers[li];
        const uint8_t *q = p;
        memset(L, 0, sizeof *L);
        L->op = rdi(q); L->n_in = rdi(q + 4); q += 8;
        for (int k = 0; k < LK_MAX_IN; k++, q += 4) L->in[k] = rdi(q);
        L->out = rdi(q); q += 4;
        int32_t *f[] = {&L->kh, &L->kw, &L->sh, &L->sw, &L->dh, &L->dw, &L->pad_t, &L->pad_l,
                        &L->pad_b, &L->pad_r, &L->groups, &L->act_min, &L->act_max, &L->axis,
                        &L->count_include_pad, &L->rows};
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++, q += 4) *f[k] = rdi(q);
        for (int k = 0; k < LK_MAX_DIMS; k++, q += 4) L->perm[k] = rdi(q);
        uint32_t o_w = rd32(q), o_b = rd32(q + 4), o_m = rd32(q + 8), o_t = rd32(q + 12);
        q += 16;
        p += 4 * LK_LAYER_WORDS;
        if (L->n_in < 1 || L->n_in > LK_MAX_IN || !check_tensor(m, L->out)) return LK_ERR_BLOB;
        for (int k = 0; k < L->n_in; k++)
            if (!check_tensor(m, L->in[k])) return LK_ERR_BLOB;
        const lk_tensor *X = &tensors[L->in[0]], *Y = &tensors[L->out];
        int bad = 0;
        switch (L->op) {
        case LK_OP_CONV: {
            if (X->ndim != 3 || Y->ndim != 3 || L->groups < 1 || L->groups > LK_MAX_GEOMETRY ||
                X->shape[2] % L->groups || Y->shape[2] % L->groups || L->kh < 1 ||
                L->kw < 1 || L->kh > LK_MAX_GEOMETRY || L->kw > LK_MAX_GEOMETRY ||
                L->sh < 1 || L->sw < 1 || L->dh < 1 || L->dw < 1)
                return LK_ERR_OP;
            const uint64_t cout = (uint64_t)Y->shape[2];
            const uint64_t k = (uint64_t)L->kh * (uint64_t)L->kw * (uint64_t)(X->shape[2] / L->groups);
            L->weight = arr(b, len, o_w, cout * k, 1, &bad);
            L->bias = arr(b, len, o_b, cout, 4, &bad);
            L->multiplier = arr(b, len, o_m, cout, 4, &bad);
            if (!L->weight || !L->bias || !L->multiplier) bad = 1;
            break;
        }
        case LK_OP_DENSE: {
            if (X->ndim < 1 || Y->ndim < 1) return LK_ERR_OP;
            const uint64_t n = (uint64_t)Y->shape[Y->ndim - 1], k = (uint64_t)X->shape[X->ndim - 1];
            L->weight = arr(b, len, o_w, n * k, 1, &bad);
            L->bias = arr(b, len, o_b, n, 4, &bad);
            L->multiplier = arr(b, len, o_m, n, 4, &bad);
            if (!L->weight || !L->bias || !L->multiplier) bad = 1;
            break;
        }
        case LK_OP_MAXPOOL: case LK_OP_AVGPOOL:
            if (X->ndim != 3 || Y->ndim != 3 || L->kh < 1 || L->kw < 1 || L->sh < 1 ||
                L->sw < 1 || L->dh < 1 || L->dw < 1)
                return LK_ERR_OP;
            break;
        case LK_OP_GLOBAL_AVGPOOL:
            if (X->ndim != 3) return LK_ERR_OP;
            break;
        case LK_OP_ADD: case LK_OP_MUL:
            if (L->n_in != 2 || tensors[L->in[1]].ndim > Y->ndim) return LK_ERR_OP;
            break;
        case LK_OP_CONCAT:
            if (L->axis < 0 || L->axis >= Y->ndim) return LK_ERR_OP;
            for (int k = 0; k < L->n_in; k++)
                L->tables[k] = arr(b, len, rd32(q + 4 * k), 256, 1, &bad);
            break;
        case LK_OP_RESHAPE:
            break;
        case LK_OP_TRANSPOSE:
            for (int d = 0; d < Y->ndim; d++)
                if (L->perm[d] < 0 || L->perm[d] >= X->ndim) return LK_ERR_OP;
            break;
        case LK_OP_LUT:
            if (L->rows < 0 || (L->rows > 1 && L->rows != Y->shape[Y->ndim - 1])) return LK_ERR_OP;
            L->table = arr(b, len, o_t, 256 * (uint64_t)(L->rows > 1 ? L->rows : 1), 1, &bad);
            if (!L->table) bad = 1;
            break;
        case LK_OP_GATHER:
            if (X->dtype != LK_INT32 || Y->ndim < 1 || L->rows < 1) return LK_ERR_OP;
            L->table = arr(b, len, o_t, (uint64_t)L->rows * (uint64_t)Y->shape[Y->ndim - 1], 1, &bad);
            if (!L->table) bad = 1;
            break;
        default:
            return LK_ERR_OP;
        }
        if (bad || !shapes_consistent(m, L) || !values_sane(m, L, &work)) return LK_ERR_BLOB;
    }
    m->variant = LK_VARIANT_SCALAR;
    return LK_OK;
}

/* ------------------------------------------------------------------ variants */

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__) && LK_X86_VNNI
#include <cpuid.h>
/* AVX-VNNI is CPUID.(EAX=7,ECX=1):EAX bit 4. Asked directly because clang before 15 has no
 * "avxvnni" name for __builtin_cpu_supports (the ASan build of the fuzzer uses clang 14); the
 * OS's YMM state is covered by the avx2 check beside it. */
static int lk_cpu_has_avx_vnni(void)
{
    unsigned int a, b, c, d;
    if (!__get_cpuid_count(7, 1, &a, &b, &c, &d))
        return 0;
    return (a >> 4) & 1u;
}
#endif

int lk_variant_supported(int variant)
{
    switch (variant) {
    case LK_VARIANT_SCALAR:
        return 1;
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    case LK_VARIANT_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2");
#if LK_X86_VNNI   /* lk_vnni.c; the compiler's CPU check includes the OS's AVX state */
    case LK_VARIANT_AVX_VNNI:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && lk_cpu_has_avx_vnni();
    case LK_VARIANT_AVX512_VNNI:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512vnni");
#endif
#endif
#if defined(__aarch64__)
    case LK_VARIANT_NEON:
        return 1;
#if defined(__linux__)
    case LK_VARIANT_NEON_DOTPROD:
        return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#elif defined(__ARM_FEATURE_DOTPROD)
    case LK_VARIANT_NEON_DOTPROD:
        return 1;
#endif
#endif
    default:
        return 0;
    }
}

int lk_best_variant(void)
{
    static const int order[] = {LK_VARIANT_NEON_DOTPROD, LK_VARIANT_NEON, LK_VARIANT_AVX512_VNNI,
                                LK_VARIANT_AVX_VNNI, LK_VARIANT_AVX2};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (lk_variant_supported(order[i])) return order[i];
    return LK_VARIANT_SCALAR;
}

const char *lk_variant_name(int variant)
{
    switch (variant) {
    case LK_VARIANT_SCALAR: return "c-scalar";
    case LK_VARIANT_AVX2: return "c-avx2";
    case LK_VARIANT_AVX_VNNI: return "c-avx-vnni";
    case LK_VARIANT_AVX512_VNNI: return "c-avx512-vnni";
    case LK_VARIANT_NEON: return "c-neon";
    case LK_VARIANT_NEON_DOTPROD: return "c-neon-dotprod";
    default: return "unknown";
    }
}

static size_t align16(size_t n) { return (n + 15u) & ~(size_t)15u; }

size_t lk_packed_size(const lk_model *m, int variant)
{
    size_t total = 0;
    if (variant == LK_VARIANT_SCALAR) return 0;
    for (int32_t i = 0; i < m->n_layers; i++)
        total += align16(lk_simd_packed_size(m, &m->layers[i], variant));
    return total;
}

size_t lk_scratch_size(const lk_model *m, int variant)
{
    size_t most = 0;
    if (variant == LK_VARIANT_SCALAR) return 0;
    for (int32_t i = 0; i < m->n_layers; i++) {
        size_t s = lk_simd_scratch_size(m, &m->layers[i], variant);
        if (s > most) most = s;
    }
    return align16(most);
}

int lk_prepare(lk_model *m, int variant, void *buf, size_t size)
{
    if (variant < 0 || variant >= LK_N_VARIANTS || !lk_variant_supported(variant))
        return LK_ERR_VARIANT;
    if (size < lk_packed_size(m, variant) || ((uintptr_t)buf & 15u)) return LK_ERR_CAPACITY;
    uint8_t *p = (uint8_t *)buf;
    for (int32_t i = 0; i < m->n_layers; i++) {
        lk_layer *L = &m->layers[i];
        L->packed = NULL;
        if (variant == LK_VARIANT_SCALAR) continue;
        size_t s = lk_simd_packed_size(m, L, variant);
        if (s) {
            L->packed = p;
            lk_simd_pack(m, L, variant, p);
            p += align16(s);
        }
    }
    m->variant = variant;
    return LK_OK;
}

int lk_run(const lk_model *m, uint8_t *arena, void *scratch)
{
    for (int32_t i = 0; i < m->n_layers; i++) {
        const lk_layer *L = &m->layers[i];
        int rc;
        switch (L->op) {
        case LK_OP_CONV:
            rc = L->packed ? lk_simd_conv(m, L, arena, scratch) : lk_conv_scalar(m, L, arena);
            break;
        case LK_OP_DENSE:
            rc = L->packed ? lk_simd_dense(m, L, arena, scratch) : lk_dense_scalar(m, L, arena);
            break;
        case LK_OP_MAXPOOL: rc = m->variant == LK_VARIANT_SCALAR ? lk_maxpool(m, L, arena)
                                                                 : lk_simd_maxpool(m, L, arena); break;
        case LK_OP_AVGPOOL: rc = lk_avgpool(m, L, arena); break;
        case LK_OP_GLOBAL_AVGPOOL: rc = lk_global_avgpool(m, L, arena); break;
        case LK_OP_ADD: rc = m->variant == LK_VARIANT_SCALAR ? lk_add(m, L, arena)
                                                             : lk_simd_add(m, L, arena); break;
        case LK_OP_CONCAT: rc = lk_concat(m, L, arena); break;
        case LK_OP_RESHAPE: rc = lk_reshape(m, L, arena); break;
        case LK_OP_TRANSPOSE: rc = lk_transpose(m, L, arena); break;
        case LK_OP_LUT: rc = lk_lut(m, L, arena); break;
        /* elementwise and memory-bound: the scalar kernel in every variant, on purpose */
        case LK_OP_MUL: rc = lk_mul(m, L, arena); break;
        case LK_OP_GATHER: rc = lk_gather(m, L, arena); break;
        default: rc = LK_ERR_OP;
        }
        if (rc != LK_OK) return rc;
    }
    return LK_OK;
}
