/*
 * lk_simd.c -- conv and dense with packed weights for the SIMD variants: the driver.
 *
 * Every path reduces a layer to exact int32 dot products and then requantizes each
 * element exactly as the scalar kernel does (lk_requant, or an AVX2 transcription of it
 * that performs the same float32 operations), so the variants can only differ in how they
 * add integers -- which is exact -- never in rounding.
 *
 * A packed conv pads its input once per layer into scratch (in its mode's input form),
 * then hands each output pixel's receptive field to the mode's kernel as a contiguous
 * "patch" in weight order [ki][kj][c] -- whole kernel rows copied, or, for a 1x1 conv, the
 * pixel itself in place -- 4 pixels at a time (conv_tiled). A dense layer's patch is its
 * input row. Patches and weights are zero-padded to whole groups (4 bytes per lane; 32-byte
 * rows for MODE_I8). Packed weight layouts (made once by lk_prepare; a 16-byte header
 * holds the mode):
 *
 *   MODE_U8S8  (AVX2, every |w| <= 64, e.g. onnxruntime's reduce_range 7-bit weights):
 *     an outer-product tile: weights int8 [N/8][K/4][8 outputs][4 k], so one vpmaddubsw of
 *     4 broadcast input bytes against 32 weight bytes (then vpmaddwd by 1) adds 4 products
 *     to each of 8 output lanes -- no horizontal sums, 4 pixels x 16 outputs per tile.
 *     Input as uint8 x + 128, pre-padded once per layer (padding: zx + 128) so a 1x1 conv
 *     reads its pixels in place and others copy whole kernel rows; the offset is folded
 *     into the bias: acc = (bias - (zx + 128) * sum(w)) + sum((x + 128) * w). vpmaddubsw
 *     pair sums are at most 2 * 255 * 64 = 32640, so they never saturate.
 *   MODE_VNNI, MODE_VNNI512 (AVX-VNNI / AVX-512 VNNI, any int8 weights): MODE_U8S8's
 *     layout and input (blocks of 8 / 16 outputs), summed by vpdpbusd in lk_vnni.c, which
 *     never saturates: exact for full-range weights too.
 *   MODE_I16   (AVX2, any int8 weights): the same tiles over int16 -- weights [N/8][K/2][8][2],
 *     input int16 x - zx (padding 0), one vpmaddwd of a broadcast input pair adds 2
 *     products to each of 8 output lanes; pair sums <= 2 * 255 * 128 never overflow.
 *   MODE_SDOT  (NEON+SDOT): the same outer-product tiling with blocks of 4 outputs
 *     ([N/4][K/4][4][4]) and sdot by lane, 4 pixels x 16 outputs per tile, raw int8 input
 *     (padding zx), acc = (bias - zx * sum(w)) + sum(x * w); requantized 4 lanes at a time
 *     with fcvtns (round half to even).
 *   MODE_I8    (NEON): weights int8 [N][Kp]; patch raw int8 x (padding zx); acc as SDOT;
 *     smull (int8 products fit int16: |p| <= 16384) + sadalp into int32.
 *   MODE_DW    (depthwise, groups == C == Cout, all SIMD variants): weights int16
 *     [KH*KW][Cp] (channels padded to blocks of 16) with the bias and multipliers beside
 *     them; the input is padded once per layer into scratch as int16 x - zx and the taps run
 *     unchecked (lk_avx2_depthwise / lk_neon_depthwise; see depthwise() below).
 *
 * Other shapes (general groups, depthwise with a channel multiplier) stay on the scalar
 * kernel (their `packed` stays NULL).
 *
 * This file holds no intrinsics: it chooses a layer's mode, packs, pads, gathers patches
 * and loops over pixels, and calls the per-ISA kernels beside the scalar reference
 * (lk_ops.c), as TFLite Micro keeps optimized kernels apart: lk_avx2.c (MODE_U8S8, MODE_I16,
 * depthwise, requantization, add), lk_vnni.c (MODE_VNNI, MODE_VNNI512), lk_neon.c (MODE_I8,
 * requantization), lk_sdot.c (MODE_SDOT). Each carries its function-level target
 * attributes, so every file builds with baseline flags and lk_variant_supported() decides at
 * run time; lk_pack.h holds the layouts they share.
 */
#include "lk_pack.h"
#include "lk_x86.h"   /* LK_X86, lk_x86_simd */
#include "lk_arm.h"   /* LK_ARM */


#if !LK_X86 && !LK_ARM
/* No SIMD ISA (a microcontroller, or an unknown CPU): nothing is ever packed, so lk_run
 * only reaches the scalar kernels; these stubs keep the SIMD code out of the image. */
size_t lk_simd_packed_size(const lk_model *m, const lk_layer *L, int variant)
{
    (void)m; (void)L; (void)variant;
    return 0;
}
size_t lk_simd_scratch_size(const lk_model *m, const lk_layer *L, int variant)
{
    (void)m; (void)L; (void)variant;
    return 0;
}
void lk_simd_pack(const lk_model *m, lk_layer *L, int variant, void *buf)
{
    (void)m; (void)L; (void)variant; (void)buf;
}
int lk_simd_conv(const lk_model *m, const lk_layer *L, uint8_t *arena, void *scratch)
{
    (void)scratch;
    return lk_conv_scalar(m, L, arena);
}
int lk_simd_dense(const lk_model *m, const lk_layer *L, uint8_t *arena, void *scratch)
{
    (void)scratch;
    return lk_dense_scalar(m, L, arena);
}
int lk_simd_add(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    return lk_add(m, L, arena);
}
int lk_simd_maxpool(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    return lk_maxpool(m, L, arena);
}
#else /* the SIMD variants */


/* Convs that pad their input once per layer and gather kernel rows (conv_tiled). */
static int padded_conv(int mode) { return lk_tiled(mode) || mode == MODE_I8; }

static int variant_has_simd(int variant)
{
#if LK_X86
    if (variant == LK_VARIANT_AVX2) return 1;
#if LK_X86_VNNI
    if (variant == LK_VARIANT_AVX_VNNI || variant == LK_VARIANT_AVX512_VNNI) return 1;
#endif
#endif
#if LK_ARM
    if (variant == LK_VARIANT_NEON || variant == LK_VARIANT_NEON_DOTPROD) return 1;
#endif
    (void)variant;
    return 0;
}

/* Which packed mode a layer takes for `variant`, with its N (outputs) and K (dot length). */
static int pack_mode(const lk_model *m, const lk_layer *L, int variant, int32_t *N, int32_t *K)
{
    int gemm = 0;
    if (!variant_has_simd(variant)) return MODE_NONE;
    if (L->op == LK_OP_DENSE) {
        const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
        *K = X->shape[X->ndim - 1];
        *N = Y->shape[Y->ndim - 1];
        gemm = 1;
    } else if (L->op == LK_OP_CONV) {
        lk_conv_geom g;
        lk_conv_geometry(m, L, &g);
        *N = g.CO;
        *K = g.K;
        if (g.G == g.C && g.CO == g.C && g.G > 1) {
            *K = g.KH * g.KW;
            return *K <= LK_DW_MAX_TAPS ? MODE_DW : MODE_NONE;
        }
        gemm = g.G == 1;
    }
    if (!gemm) return MODE_NONE;
    if (variant == LK_VARIANT_NEON_DOTPROD) return MODE_SDOT;
    if (variant == LK_VARIANT_AVX_VNNI) return MODE_VNNI;         /* any int8 weights */
    if (variant == LK_VARIANT_AVX512_VNNI) return MODE_VNNI512;
    if (variant != LK_VARIANT_AVX2) return MODE_I8;
    const size_t n = (size_t)*N * (size_t)*K;
    for (size_t i = 0; i < n; i++)
        if (L->weight[i] < -64 || L->weight[i] > 64) return MODE_I16;
    return MODE_U8S8;
}

size_t lk_simd_packed_size(const lk_model *m, const lk_layer *L, int variant)
{
    int32_t N = 0, K = 0;
    const int mode = pack_mode(m, L, variant, &N, &K);
    switch (mode) {
    case MODE_U8S8: case MODE_SDOT: case MODE_I16: case MODE_VNNI: case MODE_VNNI512:
        /* tiles, bias and mult per block */
        return LK_PACK_HEADER + (size_t)(lk_tile_nb(mode, N) * lk_tile_bw(mode)) * 4u * (size_t)lk_tile_k4(mode, K)
               + 2u * 4u * (size_t)(lk_tile_nb(mode, N) * lk_tile_bw(mode));
    case MODE_I8:
        return LK_PACK_HEADER + lk_up16((size_t)N * (size_t)lk_kpad(K)) + 4u * (size_t)N;
    case MODE_DW:   /* int16 weights [Cp][T2], bias and multipliers [Cp] */
        return LK_PACK_HEADER + (size_t)lk_dw_cp(N) * (2u * (size_t)lk_dw_t2(K) + 8u);
    default:
        return 0;
    }
}

size_t lk_simd_scratch_size(const lk_model *m, const lk_layer *L, int variant)
{
    int32_t N = 0, K = 0;
    const int mode = pack_mode(m, L, variant, &N, &K);
    switch (mode) {
    case MODE_U8S8: case MODE_SDOT: case MODE_I8: case MODE_I16: case MODE_VNNI: case MODE_VNNI512:
        /* padded input, 4 patches */
        if (L->op == LK_OP_CONV && padded_conv(mode)) {
            const lk_tensor *X = &m->tensors[L->in[0]];
            const size_t hp = (size_t)(X->shape[0] + L->pad_t + L->pad_b);
            const size_t wp = (size_t)(X->shape[1] + L->pad_l + L->pad_r);
            return lk_up16(hp * wp * (size_t)X->shape[2] * (size_t)lk_esz(mode) + 64u) +
                   4u * lk_up16(4u * (size_t)lk_tile_k4(mode, K) + 32u);
        }
        if (mode != MODE_I8) return lk_up16(4u * (size_t)lk_tile_k4(mode, K) + 32u);
        return 2u * (4u * lk_up16((size_t)N) + (size_t)lk_kpad(K)) + 64u;   /* dense, MODE_I8 */
    case MODE_DW: {   /* tap offsets, then the padded int16 input */
        const lk_tensor *X = &m->tensors[L->in[0]];
        const size_t hp = (size_t)(X->shape[0] + L->pad_t + L->pad_b);
        const size_t wp = (size_t)(X->shape[1] + L->pad_l + L->pad_r);
        return lk_up16(sizeof(ptrdiff_t) * (size_t)lk_dw_t2(K)) + hp * wp * (size_t)lk_dw_cp(N) * 2u;
    }
    default:
        return 0;
    }
}

/* MODE_DW (lk_pack.h): weight [C][KH][KW][1] -> int16 blocks of 16 channels. Entry j of
 * half h of tap pair q: x86, channel (j/8)*8 + h*4 + (j%8)/2 at tap 2q + j%2 (the order
 * vpunpck{l,h}wd gives the inputs); ARM, channel j at tap 2q + h. Padding channels and the
 * odd last tap are zero. Bias and multipliers per block in accumulator lane order: lane j
 * of half h is channel (j/4)*8 + h*4 + j%4 on x86, 8h + j on ARM. */
#if LK_X86
#define DW_PAIRS 1   /* x86: taps interleaved in pairs for vpmaddwd */
#else
#define DW_PAIRS 0
#endif
static void pack_depthwise(const lk_layer *L, int32_t C, int32_t T, uint8_t *buf)
{
    const int32_t Cp = lk_dw_cp(C), T2 = lk_dw_t2(T);
    int16_t *w = (int16_t *)(void *)buf;
    int32_t *bias = (int32_t *)(void *)(w + (size_t)Cp * T2);
    float *mult = (float *)(void *)(bias + Cp);
    for (int32_t b = 0; b < Cp; b += 16) {
        for (int32_t q = 0; q < T2 / 2; q++)
            for (int32_t h = 0; h < 2; h++)
                for (int32_t j = 0; j < 16; j++) {
                    const int32_t c = b + (DW_PAIRS ? (j / 8) * 8 + h * 4 + (j % 8) / 2 : j);
                    const int32_t t = 2 * q + (DW_PAIRS ? j % 2 : h);
                    w[(size_t)b * T2 + 32u * (size_t)q + 16u * (size_t)h + (size_t)j] =
                        (int16_t)(c < C && t < T ? L->weight[(size_t)c * T + t] : 0);
                }
        for (int32_t h = 0; h < 2; h++)
            for (int32_t j = 0; j < 8; j++) {
                const int32_t c = b + (DW_PAIRS ? (j / 4) * 8 + h * 4 + j % 4 : 8 * h + j);
                bias[b + 8 * h + j] = c < C ? L->bias[c] : 0;
                mult[b + 8 * h + j] = c < C ? L->multiplier[c] : 0.0f;
            }
    }
}

void lk_simd_pack(const lk_model *m, lk_layer *L, int variant, void *buf)
{
    int32_t N = 0, K = 0;
    const int mode = pack_mode(m, L, variant, &N, &K);
    const int32_t Kp = lk_kpad(K);
    *(int32_t *)buf = mode;
    uint8_t *w = (uint8_t *)buf + LK_PACK_HEADER;
    if (lk_tiled(mode)) {   /* [N/BW][K4][BW outputs][4 k], bias folded, padded mult */
        const int32_t K4 = lk_tile_k4(mode, K), BW = lk_tile_bw(mode), NP = lk_tile_nb(mode, N) * BW;
        const int32_t zx = mode == MODE_I16 ? 0   /* int16 patches hold x - zx already */
                         : m->tensors[L->in[0]].zero_point + (lk_u8_input(mode) ? 128 : 0);
        const int32_t per = 4 / lk_esz(mode);     /* k values per 4-byte lane */
        int8_t *t = (int8_t *)w;
        int16_t *t16 = (int16_t *)(void *)w;
        int32_t *bias = (int32_t *)(void *)(w + (size_t)NP * 4u * (size_t)K4);
        float *mult = (float *)(void *)(bias + NP);
        for (int32_t n = 0; n < NP; n++) {
            int32_t sum = 0;
            for (int32_t k = 0; k < per * K4; k++) {
                const int8_t v = n < N && k < K ? L->weight[(size_t)n * K + k] : 0;
                const size_t at = ((size_t)(n / BW) * K4 + k / per) * (size_t)(per * BW) +
                                  (size_t)(n % BW) * per + (size_t)(k % per);
                if (mode == MODE_I16) t16[at] = v;
                else t[at] = v;
                sum += v;
            }
            bias[n] = n < N ? L->bias[n] - zx * sum : 0;
            mult[n] = n < N ? L->multiplier[n] : 0.0f;
        }
    } else if (mode == MODE_I8) {
        int8_t *w8 = (int8_t *)w;
        int32_t *bias = (int32_t *)(void *)(w + lk_up16((size_t)N * Kp));
        const int32_t zx = m->tensors[L->in[0]].zero_point;
        for (int32_t n = 0; n < N; n++) {
            int32_t sum = 0;
            for (int32_t k = 0; k < Kp; k++) {
                const int8_t v = k < K ? L->weight[(size_t)n * K + k] : 0;
                w8[(size_t)n * Kp + k] = v;
                sum += v;
            }
            bias[n] = L->bias[n] - zx * sum;
        }
    } else if (mode == MODE_DW) {
        pack_depthwise(L, N, K, w);
    }
}


/* ------------------------------------------------------------------ per-ISA dispatch */

static lk_tile_fn tile_kernel(int mode)
{
#if LK_X86
    if (mode == MODE_U8S8) return lk_avx2_u8s8_pixels;
    if (mode == MODE_I16) return lk_avx2_i16_pixels;
#if LK_X86_VNNI
    if (mode == MODE_VNNI || mode == MODE_VNNI512) return lk_vnni_pixels;
#endif
#endif
#if LK_ARM
    if (mode == MODE_SDOT) return lk_sdot_pixels;
    if (mode == MODE_I8) return lk_neon_pixels;
#endif
    (void)mode;
    return NULL;
}

/* lk_requant on a row of N accumulators (+ bias): the variant's vector form for the whole
 * blocks, then the scalar one -- the same bits either way. */
static void requant_row(int variant, const lk_layer *L, const int32_t *acc, const int32_t *bias,
                        int32_t N, int32_t zy, int8_t *y)
{
    int32_t n = 0;
#if LK_X86
    if (lk_x86_simd(variant)) n = lk_avx2_requant_row(L, acc, bias, N, zy, y);
#endif
#if LK_ARM
    n = lk_neon_requant_row(L, acc, bias, N, zy, y);
#endif
    (void)variant;
    const float lo = (float)(L->act_min - zy), hi = (float)(L->act_max - zy);
    for (; n < N; n++) y[n] = lk_requant(acc[n] + bias[n], L->multiplier[n], lo, hi, zy);
}

/* One gathered MODE_I8 patch (Kp elements) against every packed weight row (plain NEON). */
static void dots(const void *patch, const lk_layer *L, int32_t Kp, int32_t N, int32_t *acc)
{
#if LK_ARM
    lk_neon_dot_i8(patch, lk_packed_w(L), Kp, N, acc);
#else
    (void)patch; (void)L; (void)Kp; (void)N; (void)acc;
#endif
}

/* ------------------------------------------------------------------ layers */

/* Copy C input values into a patch: int16 x - zx, or int8 x (xor 0x80 for uint8). */
static void put_pixel(int mode, void *patch, size_t at, const int8_t *xp, int32_t C, int32_t zx)
{
    if (mode == MODE_I16) {
        int16_t *p = (int16_t *)patch + at;
        if (xp) for (int32_t c = 0; c < C; c++) p[c] = (int16_t)(xp[c] - zx);
        else for (int32_t c = 0; c < C; c++) p[c] = 0;
    } else {
        uint8_t *p = (uint8_t *)patch + at;
        const uint8_t flip = lk_u8_input(mode) ? 0x80u : 0u;
        if (xp) for (int32_t c = 0; c < C; c++) p[c] = (uint8_t)xp[c] ^ flip;
        else memset(p, (uint8_t)zx ^ flip, (size_t)C);
    }
}

int lk_simd_dense(const lk_model *m, const lk_layer *L, uint8_t *arena, void *scratch)
{
    const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
    const int32_t K = X->shape[X->ndim - 1], N = Y->shape[Y->ndim - 1], Kp = lk_kpad(K);
    const int32_t rows = lk_tensor_size(X) / K, zx = X->zero_point, v = m->variant;
    const int mode = lk_packed_mode(L);
    if (lk_tiled(mode)) {
        const lk_tile_fn kernel = tile_kernel(mode);
        uint8_t *patch = (uint8_t *)scratch;
        memset(patch, 0, 4u * (size_t)lk_tile_k4(mode, K));
        for (int32_t r = 0; r < rows; r++) {
            put_pixel(mode, patch, 0, (const int8_t *)(arena + X->offset) + (size_t)r * K, K, zx);
            const uint8_t *xs[1] = {patch};
            int8_t *ys[1] = {(int8_t *)(arena + Y->offset) + (size_t)r * N};
            kernel(xs, 1, L, K, N, Y->zero_point, ys);
        }
        return LK_OK;
    }
    int32_t *acc = (int32_t *)scratch;   /* MODE_I8 (plain NEON) */
    void *patch = acc + lk_up16((size_t)N);
    const int32_t *bias = lk_i8_bias(L, N, Kp);
    memset(patch, 0, (size_t)Kp);
    for (int32_t r = 0; r < rows; r++) {
        put_pixel(mode, patch, 0, (const int8_t *)(arena + X->offset) + (size_t)r * K, K, zx);
        dots(patch, L, Kp, N, acc);
        requant_row(v, L, acc, bias, N, Y->zero_point,
                    (int8_t *)(arena + Y->offset) + (size_t)r * N);
    }
    return LK_OK;
}

/* Depthwise (MODE_DW): pad the input once into scratch as int16 x - zx (border and padding
 * channels 0), make the taps' offsets from a window's origin (kernel rows and dilation
 * folded in), and let the variant's kernel run every pixel without a bounds check. */
static int depthwise(const lk_model *m, const lk_layer *L, uint8_t *arena, void *scratch)
{
    lk_conv_geom g;
    lk_conv_geometry(m, L, &g);
    const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
    const int8_t *x = (const int8_t *)(arena + X->offset);
    const int32_t C = g.C, Cp = lk_dw_cp(C), T = g.KH * g.KW, zx = X->zero_point, zy = Y->zero_point;
    const int32_t Wp = g.W + L->pad_l + L->pad_r;
    ptrdiff_t *off = (ptrdiff_t *)scratch;
    int16_t *xp = (int16_t *)(void *)((uint8_t *)scratch + lk_up16(sizeof(ptrdiff_t) * (size_t)lk_dw_t2(T)));
    const size_t prow = (size_t)Wp * Cp;   /* int16 per padded row; only the border is zeroed */
    memset(xp, 0, (size_t)L->pad_t * prow * 2u);
    memset(xp + (size_t)(L->pad_t + g.H) * prow, 0, (size_t)L->pad_b * prow * 2u);
    for (int32_t i = 0; i < g.H; i++) {
        const int8_t *restrict src = x + (size_t)i * g.W * C;
        int16_t *restrict row = xp + (size_t)(i + L->pad_t) * prow, *restrict dst = row + (size_t)L->pad_l * Cp;
        memset(row, 0, (size_t)L->pad_l * Cp * 2u);
        memset(dst + (size_t)g.W * Cp, 0, (size_t)L->pad_r * Cp * 2u);
        if (Cp == C) {
#if LK_X86
            lk_avx2_widen_row(src, dst, g.W * C, zx);
#else
            for (int32_t k = 0; k < g.W * C; k++) dst[k] = (int16_t)(src[k] - zx);
#endif
            continue;
        }
        for (int32_t j = 0; j < g.W; j++)
            for (int32_t c = 0; c < Cp; c++)
                dst[(size_t)j * Cp + c] = (int16_t)(c < C ? src[(size_t)j * C + c] - zx : 0);
    }
    for (int32_t t = 0; t < lk_dw_t2(T); t++)
        off[t] = t < T ? ((ptrdiff_t)(t / g.KW) * g.DH * Wp + (ptrdiff_t)(t % g.KW) * g.DW) * Cp : 0;
    const int8_t *pw = (const int8_t *)lk_packed_w(L);
    const int32_t *bias = (const int32_t *)(const void *)(pw + (size_t)Cp * lk_dw_t2(T) * 2u);
    const lk_dw_args a = {(const int16_t *)(const void *)pw, bias, (const float *)(const void *)(bias + Cp),
                          off, T, C, Cp, g.OH, g.OW, (ptrdiff_t)g.SW * Cp, (ptrdiff_t)g.SH * Wp * Cp,
                          (float)(L->act_min - zy), (float)(L->act_max - zy), zy};
    int8_t *y = (int8_t *)(arena + Y->offset);
#if LK_X86
    lk_avx2_depthwise(&a, xp, y);
#endif
#if LK_ARM
    lk_neon_depthwise(&a, xp, y);
#endif
    return LK_OK;
}

/* Copy one kernel row into a patch: 8-byte words, the last one overlapping, inline. The
 * rows are short (9 to ~100 bytes) and there are thousands per layer; a C library memcpy
 * call costs more than its bytes (measured under qemu-aarch64 on cnn2d_32, c-neon-dotprod:
 * patch copies 493k -> 471k instructions per inference). */
static inline void copy_row(uint8_t *dst, const uint8_t *src, size_t n)
{
    if (n < 8) {
        for (size_t i = 0; i < n; i++) dst[i] = src[i];
        return;
    }
    uint64_t v;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        memcpy(&v, src + i, 8);
        memcpy(dst + i, &v, 8);
    }
    memcpy(&v, src + n - 8, 8);
    memcpy(dst + n - 8, &v, 8);
}

/* Padded conv (every packed mode but depthwise): pad the input once into scratch -- U8S8:
 * uint8 x + 128, border zx + 128; SDOT and I8: int8 x, border zx; I16: int16 x - zx,
 * border 0 -- then per group of 4 output pixels point at (1x1) or copy (whole kernel rows)
 * their receptive fields and run the mode's kernel. */
static int conv_tiled(int mode, const lk_layer *L, const lk_conv_geom *g, const int8_t *x,
                      int32_t zx, int8_t *y, int32_t zy, void *scratch)
{
    const lk_tile_fn kernel = tile_kernel(mode);
    const int32_t Hp = g->H + L->pad_t + L->pad_b, Wp = g->W + L->pad_l + L->pad_r, C = g->C;
    const size_t e = (size_t)lk_esz(mode), row = (size_t)Wp * C * e, cb = (size_t)C * e;
    uint8_t *xp = (uint8_t *)scratch;
    uint8_t *patches = xp + lk_up16((size_t)Hp * row + 64u);
    const size_t pstride = lk_up16(4u * (size_t)lk_tile_k4(mode, g->K) + 32u);
    const int32_t width = g->W * C;      /* locals: a byte store may alias *g, which */
    if (mode == MODE_I16) {              /* would stop these loops from vectorizing */
        memset(xp, 0, (size_t)Hp * row + 64u);
        for (int32_t i = 0; i < g->H; i++) {
            const int8_t *restrict src = x + (size_t)i * width;
            int16_t *restrict dst = (int16_t *)(void *)(xp + (size_t)(i + L->pad_t) * row + (size_t)L->pad_l * cb);
            for (int32_t k = 0; k < width; k++) dst[k] = (int16_t)(src[k] - zx);
        }
    } else {
        const uint8_t flip = lk_u8_input(mode) ? 0x80u : 0u;
        memset(xp, (uint8_t)zx ^ flip, (size_t)Hp * row + 64u);
        for (int32_t i = 0; i < g->H; i++) {
            const int8_t *restrict src = x + (size_t)i * width;
            uint8_t *restrict dst = xp + (size_t)(i + L->pad_t) * row + (size_t)L->pad_l * cb;
            for (int32_t k = 0; k < width; k++) dst[k] = (uint8_t)src[k] ^ flip;
        }
    }
    const int direct = g->KH == 1 && g->KW == 1;
    if (!direct) memset(patches, 0, 4u * pstride);
    const int32_t npix = g->OH * g->OW;
    int32_t oy = 0, ox = 0;   /* the next pixel's position, advanced without a division */
    for (int32_t pix = 0; pix < npix; pix += 4) {
        const int P = npix - pix >= 4 ? 4 : 1;
        const int count = npix - pix >= 4 ? 4 : npix - pix;
        for (int q = 0; q < count; q += P) {
            const uint8_t *xs[4];
            int8_t *ys[4];
            for (int p = 0; p < P; p++) {
                const int32_t at = pix + q + p;
                const uint8_t *origin = xp + (size_t)(oy * g->SH) * row + (size_t)(ox * g->SW) * cb;
                if (++ox == g->OW) {
                    ox = 0;
                    oy++;
                }
                ys[p] = y + (size_t)at * g->CO;
                if (direct) {
                    xs[p] = origin;
                    continue;
                }
                uint8_t *patch = patches + (size_t)p * pstride;
                for (int32_t ki = 0; ki < g->KH; ki++) {
                    const uint8_t *src = origin + (size_t)(ki * g->DH) * row;
                    uint8_t *dst = patch + (size_t)ki * g->KW * cb;
                    if (g->DW == 1) copy_row(dst, src, (size_t)g->KW * cb);
                    else
                        for (int32_t kj = 0; kj < g->KW; kj++)
                            copy_row(dst + (size_t)kj * cb, src + (size_t)(kj * g->DW) * cb, cb);
                }
                xs[p] = patch;
            }
            kernel(xs, P, L, g->K, g->CO, zy, ys);
        }
    }
    return LK_OK;
}

int lk_simd_conv(const lk_model *m, const lk_layer *L, uint8_t *arena, void *scratch)
{
    const int mode = lk_packed_mode(L);
    if (mode == MODE_DW) return depthwise(m, L, arena, scratch);
    lk_conv_geom g;
    lk_conv_geometry(m, L, &g);
    const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
    return conv_tiled(mode, L, &g, (const int8_t *)(arena + X->offset), X->zero_point,
                      (int8_t *)(arena + Y->offset), Y->zero_point, scratch);
}

/* ------------------------------------------------------------------ add */

int lk_simd_add(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
#if LK_X86
    const lk_tensor *A = &m->tensors[L->in[0]], *B = &m->tensors[L->in[1]], *Y = &m->tensors[L->out];
    const int32_t n = lk_tensor_size(Y);
    if (lk_x86_simd(m->variant) && lk_tensor_size(B) == n && __builtin_cpu_supports("fma")) {
        const float ra = A->scale / Y->scale, rb = B->scale / Y->scale;
        const float fixed = (float)Y->zero_point -
                            (ra * (float)A->zero_point + rb * (float)B->zero_point);
        lk_avx2_add((const int8_t *)(arena + A->offset), (const int8_t *)(arena + B->offset),
                 (int8_t *)(arena + Y->offset), n, ra, rb, fixed, (float)L->act_min,
                 (float)L->act_max);
        return LK_OK;
    }
#endif
    return lk_add(m, L, arena);
}

/* ------------------------------------------------------------------ max-pooling */

/* The variant's channel-wise max of n window pixels x + off[i] into y. */
static void max_taps(int variant, const int8_t *x, const ptrdiff_t *off, int32_t n, int32_t C, int8_t *y)
{
    (void)variant;
#if LK_X86
    lk_avx2_max_taps(x, off, n, C, y);
#endif
#if LK_ARM
    lk_neon_max_taps(x, off, n, C, y);
#endif
}

/* lk_maxpool with the channel loop in the variant's vectors. A window wholly inside the
 * input uses the window's offsets, made once per layer; a border window lists its
 * in-bounds positions (as lk_maxpool skips the others), and one wholly in the padding gives
 * -128, as in lk_maxpool. Windows of more than 64 positions take lk_maxpool itself. */
int lk_simd_maxpool(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
    const int32_t H = X->shape[0], W = X->shape[1], C = X->shape[2], OH = Y->shape[0], OW = Y->shape[1];
    if ((int64_t)L->kh * L->kw > 64 || !variant_has_simd(m->variant)) return lk_maxpool(m, L, arena);
    const int8_t *x = (const int8_t *)(arena + X->offset);
    int8_t *y = (int8_t *)(arena + Y->offset);
    const int32_t n = L->kh * L->kw, ext_h = (L->kh - 1) * L->dh, ext_w = (L->kw - 1) * L->dw;
    ptrdiff_t win[64], off[64];
    for (int32_t t = 0; t < n; t++) win[t] = ((ptrdiff_t)(t / L->kw) * L->dh * W + (ptrdiff_t)(t % L->kw) * L->dw) * C;
    for (int32_t oy = 0; oy < OH; oy++) {
        const int32_t iy0 = oy * L->sh - L->pad_t;
        for (int32_t ox = 0; ox < OW; ox++) {
            const int32_t ix0 = ox * L->sw - L->pad_l;
            int8_t *yp = y + ((size_t)oy * OW + ox) * C;
            if (iy0 >= 0 && iy0 + ext_h < H && ix0 >= 0 && ix0 + ext_w < W) {
                max_taps(m->variant, x + ((size_t)iy0 * W + ix0) * C, win, n, C, yp);
                continue;
            }
            int32_t k = 0;
            for (int32_t ki = 0; ki < L->kh; ki++) {
                const int32_t iy = iy0 + ki * L->dh;
                if (iy < 0 || iy >= H) continue;
                for (int32_t kj = 0; kj < L->kw; kj++) {
                    const int32_t ix = ix0 + kj * L->dw;
                    if (ix >= 0 && ix < W) off[k++] = ((ptrdiff_t)iy * W + ix) * C;
                }
            }
            if (k == 0) memset(yp, 0x80, (size_t)C);
            else max_taps(m->variant, x, off, k, C, yp);
        }
    }
    return LK_OK;
}

#endif /* the SIMD variants */
