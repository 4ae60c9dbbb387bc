/*
 * lk_simd.c -- conv and dense with packed weights for the SIMD variants.
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
 *     [KH*KW][C], so the per-channel loop is contiguous and the compiler vectorizes it.
 *
 * Other shapes (general groups, depthwise with a channel multiplier) stay on the scalar
 * kernel (their `packed` stays NULL). ISA code uses function-level target attributes, so
 * the file builds with baseline flags and lk_variant_supported() decides at run time.
 */
#include "lk_internal.h"
#include "lk_x86.h"   /* LK_X86, the shared AVX2 requantization, the VNNI tiles (lk_vnni.c) */
#if defined(__aarch64__) && defined(__GNUC__)
#define LK_ARM 1
#include <arm_neon.h>
#endif

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
#else /* the SIMD variants */

enum { MODE_NONE = 0, MODE_U8S8 = 1, MODE_I16 = 2, MODE_I8 = 3, MODE_DW = 4, MODE_SDOT = 5,
       MODE_VNNI = 6, MODE_VNNI512 = 7 };
enum { HEADER = 16 };

static int32_t kpad(int32_t k) { return (k + 31) & ~31; }
/* Tile geometry (MODE_U8S8, MODE_I16, MODE_SDOT): outputs per block, and the number of
 * 4-byte input groups per row (4 int8 k, or 2 int16 k for MODE_I16). */
static int tiled(int mode)
{
    return mode == MODE_U8S8 || mode == MODE_SDOT || mode == MODE_I16 || mode == MODE_VNNI ||
           mode == MODE_VNNI512;
}
/* Modes whose input is uint8 x + 128 (the offset folded into the bias). */
static int u8_input(int mode) { return mode == MODE_U8S8 || mode == MODE_VNNI || mode == MODE_VNNI512; }
static int32_t tile_bw(int mode) { return mode == MODE_SDOT ? 4 : mode == MODE_VNNI512 ? 16 : 8; }
static int32_t esz(int mode) { return mode == MODE_I16 ? 2 : 1; }  /* bytes per input value */
static int32_t tile_k4(int mode, int32_t k)
{
    if (mode == MODE_I8) return kpad(k) / 4;                     /* patch = one dot row */
    if (mode == MODE_I16) return (k + 1) / 2;
    return u8_input(mode) ? (k + 3) / 4 : (k + 15) / 16 * 4;  /* SDOT reads 16 bytes */
}
/* Convs that pad their input once per layer and gather kernel rows (conv_tiled). */
static int padded_conv(int mode) { return tiled(mode) || mode == MODE_I8; }
static int32_t tile_nb(int mode, int32_t n) { return (n + tile_bw(mode) - 1) / tile_bw(mode); }
static size_t up16(size_t n) { return (n + 15u) & ~(size_t)15u; }

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
            return MODE_DW;
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
        return HEADER + (size_t)(tile_nb(mode, N) * tile_bw(mode)) * 4u * (size_t)tile_k4(mode, K)
               + 2u * 4u * (size_t)(tile_nb(mode, N) * tile_bw(mode));
    case MODE_I8:
        return HEADER + up16((size_t)N * (size_t)kpad(K)) + 4u * (size_t)N;
    case MODE_DW:
        return HEADER + 2u * (size_t)N * (size_t)K;
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
            return up16(hp * wp * (size_t)X->shape[2] * (size_t)esz(mode) + 64u) +
                   4u * up16(4u * (size_t)tile_k4(mode, K) + 32u);
        }
        if (mode != MODE_I8) return up16(4u * (size_t)tile_k4(mode, K) + 32u);
        return 2u * (4u * up16((size_t)N) + (size_t)kpad(K)) + 64u;   /* dense, MODE_I8 */
    case MODE_DW:
        return 4u * up16((size_t)N) + 64u;
    default:
        return 0;
    }
}

static int packed_mode(const lk_layer *L) { return *(const int32_t *)L->packed; }
static const void *packed_w(const lk_layer *L) { return (const uint8_t *)L->packed + HEADER; }

static const int32_t *packed_bias(const lk_layer *L, int32_t N, int32_t Kp)
{
    return (const int32_t *)(const void *)((const uint8_t *)packed_w(L) + up16((size_t)N * Kp));
}

void lk_simd_pack(const lk_model *m, lk_layer *L, int variant, void *buf)
{
    int32_t N = 0, K = 0;
    const int mode = pack_mode(m, L, variant, &N, &K);
    const int32_t Kp = kpad(K);
    *(int32_t *)buf = mode;
    uint8_t *w = (uint8_t *)buf + HEADER;
    if (tiled(mode)) {   /* [N/BW][K4][BW outputs][4 k], bias folded, padded mult */
        const int32_t K4 = tile_k4(mode, K), BW = tile_bw(mode), NP = tile_nb(mode, N) * BW;
        const int32_t zx = mode == MODE_I16 ? 0   /* int16 patches hold x - zx already */
                         : m->tensors[L->in[0]].zero_point + (u8_input(mode) ? 128 : 0);
        const int32_t per = 4 / esz(mode);     /* k values per 4-byte lane */
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
        int32_t *bias = (int32_t *)(void *)(w + up16((size_t)N * Kp));
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
        int16_t *w16 = (int16_t *)(void *)w;   /* weight [C][KH][KW][1] -> [KH*KW][C] */
        for (int32_t c = 0; c < N; c++)
            for (int32_t k = 0; k < K; k++) w16[(size_t)k * N + c] = L->weight[(size_t)c * K + k];
    }
}

/* ------------------------------------------------------------------ dot-product cores */
/* acc[p*N + n] = sum_k patch_p[k] * w[n*Kp + k] for n < N and each of P pixels; Kp % 32 == 0. */

#if LK_X86
#define LD(p) _mm256_loadu_si256((const __m256i *)(const void *)(p))

/* [s0, s1, s2, s3] (one int32 per accumulator) from four 8-lane accumulators */
__attribute__((target("avx2")))
static inline __m128i hsum4_avx2(__m256i a0, __m256i a1, __m256i a2, __m256i a3)
{
    const __m256i s = _mm256_hadd_epi32(_mm256_hadd_epi32(a0, a1), _mm256_hadd_epi32(a2, a3));
    return _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
}

__attribute__((target("avx2")))
static inline int32_t hsum1_avx2(__m256i a)
{
    __m128i r = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
    r = _mm_hadd_epi32(r, r);
    r = _mm_hadd_epi32(r, r);
    return _mm_cvtsi128_si32(r);
}

/* u8 x s8 -> int32 lanes: vpmaddubsw (pairs, exact for |w| <= 64) then vpmaddwd by 1 */
#define MADD8(acc, x, w) _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), ones))

/* One tile: P pixels (patches xs[p], 4*K4 bytes each) x NBT blocks of 8 outputs starting
 * at block nb; requantized into ys[p][8*nb ...]. WIDE selects MODE_I16 (int16 pairs,
 * vpmaddwd) over MODE_U8S8 (uint8 x int8 quads, vpmaddubsw + vpmaddwd). P, NBT and WIDE are
 * compile-time constants at every call site, so the accumulators live in registers. */
#define MADD16(acc, x, w) _mm256_add_epi32(acc, _mm256_madd_epi16(x, w))
__attribute__((target("avx2"), always_inline))
static inline void avx2_tile(const uint8_t *const *xs, const int P, const int8_t *tiles,
                             int32_t K4, int32_t nb, const int NBT, const int WIDE,
                             const int32_t *bias, const float *mult, int32_t N, __m256 vlo,
                             __m256 vhi, __m256i vz, int8_t *const *ys)
{
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *w0 = tiles + (size_t)nb * K4 * 32u, *w1 = w0 + (size_t)K4 * 32u;
    __m256i a[4][2];
#pragma GCC unroll 4
    for (int p = 0; p < P; p++) a[p][0] = a[p][1] = _mm256_setzero_si256();
    for (int32_t kq = 0; kq < K4; kq++) {
        const __m256i wv0 = LD(w0 + 32 * kq);
        const __m256i wv1 = NBT == 2 ? LD(w1 + 32 * kq) : wv0;
#pragma GCC unroll 4
        for (int p = 0; p < P; p++) {
            int32_t q;
            memcpy(&q, xs[p] + 4 * kq, 4);
            const __m256i xb = _mm256_set1_epi32(q);
            if (WIDE) {
                a[p][0] = MADD16(a[p][0], xb, wv0);
                if (NBT == 2) a[p][1] = MADD16(a[p][1], xb, wv1);
            } else {
                a[p][0] = MADD8(a[p][0], xb, wv0);
                if (NBT == 2) a[p][1] = MADD8(a[p][1], xb, wv1);
            }
        }
    }
#pragma GCC unroll 4
    for (int p = 0; p < P; p++)
        for (int j = 0; j < NBT; j++) {
            const int32_t n0 = 8 * (nb + j), count = N - n0 < 8 ? N - n0 : 8;
            lk_requant8_avx2(a[p][j], bias + n0, mult + n0, vlo, vhi, vz, ys[p] + n0, count);
        }
}

/* P pixels through every output block of a MODE_U8S8 / MODE_I16 layer. */
__attribute__((target("avx2"), always_inline))
static inline void avx2_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K,
                               int32_t N, int32_t zy, int8_t *const *ys, const int WIDE)
{
    const int mode = WIDE ? MODE_I16 : MODE_U8S8;
    const int32_t K4 = tile_k4(mode, K), NB = tile_nb(mode, N);
    const int8_t *tiles = (const int8_t *)packed_w(L);
    const int32_t *bias = (const int32_t *)(const void *)(tiles + (size_t)NB * 32u * K4);
    const float *mult = (const float *)(const void *)(bias + 8 * NB);
    const __m256 vlo = _mm256_set1_ps((float)(L->act_min - zy));
    const __m256 vhi = _mm256_set1_ps((float)(L->act_max - zy));
    const __m256i vz = _mm256_set1_epi32(zy);
    int32_t nb = 0;
    if (P == 4) {
        for (; nb + 2 <= NB; nb += 2)
            avx2_tile(xs, 4, tiles, K4, nb, 2, WIDE, bias, mult, N, vlo, vhi, vz, ys);
        if (nb < NB) avx2_tile(xs, 4, tiles, K4, nb, 1, WIDE, bias, mult, N, vlo, vhi, vz, ys);
        return;
    }
    for (int p = 0; p < P; p++) {
        for (nb = 0; nb + 2 <= NB; nb += 2)
            avx2_tile(xs + p, 1, tiles, K4, nb, 2, WIDE, bias, mult, N, vlo, vhi, vz, ys + p);
        if (nb < NB)
            avx2_tile(xs + p, 1, tiles, K4, nb, 1, WIDE, bias, mult, N, vlo, vhi, vz, ys + p);
    }
}

__attribute__((target("avx2")))
static void u8s8_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K, int32_t N,
                        int32_t zy, int8_t *const *ys)
{
    avx2_pixels(xs, P, L, K, N, zy, ys, 0);
}

__attribute__((target("avx2")))
static void i16_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K, int32_t N,
                       int32_t zy, int8_t *const *ys)
{
    avx2_pixels(xs, P, L, K, N, zy, ys, 1);
}

/* Depthwise on 16 channels at a time: int16 products are exact (|x - zx| <= 255,
 * |w| <= 128, so |p| <= 32640), widened to int32 before accumulating. */
__attribute__((target("avx2")))
static void depthwise_avx2(const lk_conv_geom *g, const int8_t *x, int32_t zx, const int16_t *w,
                           int32_t oy, int32_t ox, int32_t *acc)
{
    const int32_t C = g->C, C16 = C & ~15;
    const __m256i vzx = _mm256_set1_epi16((int16_t)zx);
    for (int32_t c = 0; c < C16; c += 16) {
        __m256i a0 = _mm256_setzero_si256(), a1 = a0;
        for (int32_t ki = 0; ki < g->KH; ki++) {
            const int32_t iy = oy * g->SH - g->PT + ki * g->DH;
            if (iy < 0 || iy >= g->H) continue;
            for (int32_t kj = 0; kj < g->KW; kj++) {
                const int32_t ix = ox * g->SW - g->PL + kj * g->DW;
                if (ix < 0 || ix >= g->W) continue;
                const int8_t *xp = x + ((size_t)iy * g->W + ix) * C + c;
                const __m256i xv = _mm256_sub_epi16(
                    _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(const void *)xp)), vzx);
                const __m256i pr = _mm256_mullo_epi16(xv, LD(w + (size_t)(ki * g->KW + kj) * C + c));
                a0 = _mm256_add_epi32(a0, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(pr)));
                a1 = _mm256_add_epi32(a1, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(pr, 1)));
            }
        }
        _mm256_storeu_si256((__m256i *)(void *)(acc + c), a0);
        _mm256_storeu_si256((__m256i *)(void *)(acc + c + 8), a1);
    }
    for (int32_t c = C16; c < C; c++) {
        int32_t a = 0;
        for (int32_t ki = 0; ki < g->KH; ki++) {
            const int32_t iy = oy * g->SH - g->PT + ki * g->DH;
            if (iy < 0 || iy >= g->H) continue;
            for (int32_t kj = 0; kj < g->KW; kj++) {
                const int32_t ix = ox * g->SW - g->PL + kj * g->DW;
                if (ix < 0 || ix >= g->W) continue;
                a += (int32_t)(x[((size_t)iy * g->W + ix) * C + c] - zx) * w[(size_t)(ki * g->KW + kj) * C + c];
            }
        }
        acc[c] = a;
    }
}


/* lk_requant on 8 lanes: the same float32 multiply, clamp, round-half-even (vcvtps2dq in
 * the default rounding mode) and zero-point add; the scalar loop finishes the tail. */
__attribute__((target("avx2")))
static void requant_avx2(const lk_layer *L, const int32_t *acc, const int32_t *bias, int32_t N,
                         int32_t zy, int8_t *y)
{
    const float lo = (float)(L->act_min - zy), hi = (float)(L->act_max - zy);
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    const __m256i vz = _mm256_set1_epi32(zy);
    int32_t n = 0;
    for (; n + 8 <= N; n += 8) {
        const __m256i a = _mm256_add_epi32(LD(acc + n), LD(bias + n));
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(a), _mm256_loadu_ps(L->multiplier + n));
        v = _mm256_min_ps(_mm256_max_ps(v, vlo), vhi);
        const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), vz);
        const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)(void *)(y + n), _mm_packs_epi16(q16, q16));
    }
    for (; n < N; n++) y[n] = lk_requant(acc[n] + bias[n], L->multiplier[n], lo, hi, zy);
}
#endif

#if LK_ARM
static void dot_i8_neon(const int8_t *x, int32_t P, const int8_t *w, int32_t Kp, int32_t N,
                        int32_t *acc)
{
    for (int32_t p = 0; p < P; p++) {
        const int8_t *xp = x + (size_t)p * Kp;
        int32_t *ap = acc + (size_t)p * N;
        int32_t n = 0;
        for (; n + 4 <= N; n += 4) {
            const int8_t *w0 = w + (size_t)n * Kp, *w1 = w0 + Kp, *w2 = w1 + Kp, *w3 = w2 + Kp;
            int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
            for (int32_t k = 0; k < Kp; k += 16) {
                const int8x16_t xv = vld1q_s8(xp + k);
                int8x16_t wv = vld1q_s8(w0 + k);
                a0 = vpadalq_s16(a0, vmull_s8(vget_low_s8(xv), vget_low_s8(wv)));
                a0 = vpadalq_s16(a0, vmull_high_s8(xv, wv));
                wv = vld1q_s8(w1 + k);
                a1 = vpadalq_s16(a1, vmull_s8(vget_low_s8(xv), vget_low_s8(wv)));
                a1 = vpadalq_s16(a1, vmull_high_s8(xv, wv));
                wv = vld1q_s8(w2 + k);
                a2 = vpadalq_s16(a2, vmull_s8(vget_low_s8(xv), vget_low_s8(wv)));
                a2 = vpadalq_s16(a2, vmull_high_s8(xv, wv));
                wv = vld1q_s8(w3 + k);
                a3 = vpadalq_s16(a3, vmull_s8(vget_low_s8(xv), vget_low_s8(wv)));
                a3 = vpadalq_s16(a3, vmull_high_s8(xv, wv));
            }
            ap[n] = vaddvq_s32(a0);
            ap[n + 1] = vaddvq_s32(a1);
            ap[n + 2] = vaddvq_s32(a2);
            ap[n + 3] = vaddvq_s32(a3);
        }
        for (; n < N; n++) {
            const int8_t *w0 = w + (size_t)n * Kp;
            int32x4_t a0 = vdupq_n_s32(0);
            for (int32_t k = 0; k < Kp; k += 16) {
                const int8x16_t xv = vld1q_s8(xp + k), wv = vld1q_s8(w0 + k);
                a0 = vpadalq_s16(a0, vmull_s8(vget_low_s8(xv), vget_low_s8(wv)));
                a0 = vpadalq_s16(a0, vmull_high_s8(xv, wv));
            }
            ap[n] = vaddvq_s32(a0);
        }
    }
}

#endif

#if LK_ARM
/* lk_requant on 4 lanes: float32 convert and multiply (separate instructions, no fusion),
 * clamp, round half to even (fcvtns), zero-point add, narrow. */
static inline void requant4_neon(int32x4_t acc, const int32_t *bias, const float *mult,
                                 float32x4_t vlo, float32x4_t vhi, int32x4_t vz, int8_t *y,
                                 int32_t count)
{
    float32x4_t v = vmulq_f32(vcvtq_f32_s32(vaddq_s32(acc, vld1q_s32(bias))), vld1q_f32(mult));
    v = vminq_f32(vmaxq_f32(v, vlo), vhi);
    const int32x4_t q = vaddq_s32(vcvtnq_s32_f32(v), vz);
    const int8x8_t q8 = vqmovn_s16(vcombine_s16(vqmovn_s32(q), vqmovn_s32(q)));
    if (count >= 4) {   /* one 32-bit store: a variable-size memcpy is a library call, which
                         * took ~110k of cnn2d_32's instructions per inference (qemu count) */
        const uint32_t w = vget_lane_u32(vreinterpret_u32_s8(q8), 0);
        memcpy(y, &w, 4);
        return;
    }
    int8_t tmp[8];
    vst1_s8(tmp, q8);
    memcpy(y, tmp, (size_t)count);
}

/* One SDOT tile: P pixels x NBT blocks of 4 outputs; sdot by lane multiplies 4 weight
 * bytes of each of 4 outputs with 4 input bytes broadcast from one 16-byte input load. */
#define SDOT_LANE(l)                                                                   \
    do {                                                                               \
        for (int j = 0; j < NBT; j++) {                                                \
            const int8x16_t wv = vld1q_s8(tiles + ((size_t)(nb + j) * K4 + kq + (l)) * 16u); \
            for (int p = 0; p < P; p++) a[p][j] = vdotq_laneq_s32(a[p][j], wv, xv[p], l); \
        }                                                                              \
    } while (0)

__attribute__((target("arch=armv8.2-a+dotprod"), always_inline))
static inline void sdot_tile(const int8_t *const *xs, const int P, const int8_t *tiles, int32_t K4,
                             int32_t nb, const int NBT, const int32_t *bias, const float *mult,
                             int32_t N, float32x4_t vlo, float32x4_t vhi, int32x4_t vz,
                             int8_t *const *ys)
{
    int32x4_t a[4][4];
    for (int p = 0; p < P; p++)
        for (int j = 0; j < NBT; j++) a[p][j] = vdupq_n_s32(0);
    for (int32_t kq = 0; kq < K4; kq += 4) {
        int8x16_t xv[4];
        for (int p = 0; p < P; p++) xv[p] = vld1q_s8(xs[p] + 4 * kq);
        SDOT_LANE(0);
        SDOT_LANE(1);
        SDOT_LANE(2);
        SDOT_LANE(3);
    }
    for (int p = 0; p < P; p++)
        for (int j = 0; j < NBT; j++) {
            const int32_t n0 = 4 * (nb + j);
            requant4_neon(a[p][j], bias + n0, mult + n0, vlo, vhi, vz, ys[p] + n0, N - n0);
        }
}

__attribute__((target("arch=armv8.2-a+dotprod")))
static void sdot_pixels(const uint8_t *const *xs8, int P, const lk_layer *L, int32_t K, int32_t N,
                        int32_t zy, int8_t *const *ys)
{
    const int8_t *const *xs = (const int8_t *const *)xs8;
    const int32_t K4 = tile_k4(MODE_SDOT, K), NB = tile_nb(MODE_SDOT, N);
    const int8_t *tiles = (const int8_t *)packed_w(L);
    const int32_t *bias = (const int32_t *)(const void *)(tiles + (size_t)NB * 16u * K4);
    const float *mult = (const float *)(const void *)(bias + 4 * NB);
    const float32x4_t vlo = vdupq_n_f32((float)(L->act_min - zy));
    const float32x4_t vhi = vdupq_n_f32((float)(L->act_max - zy));
    const int32x4_t vz = vdupq_n_s32(zy);
    int32_t nb = 0;
    if (P == 4) {
        for (; nb + 4 <= NB; nb += 4) sdot_tile(xs, 4, tiles, K4, nb, 4, bias, mult, N, vlo, vhi, vz, ys);
        for (; nb < NB; nb++) sdot_tile(xs, 4, tiles, K4, nb, 1, bias, mult, N, vlo, vhi, vz, ys);
        return;
    }
    for (int p = 0; p < P; p++) {
        for (nb = 0; nb + 4 <= NB; nb += 4)
            sdot_tile(xs + p, 1, tiles, K4, nb, 4, bias, mult, N, vlo, vhi, vz, ys + p);
        for (; nb < NB; nb++)
            sdot_tile(xs + p, 1, tiles, K4, nb, 1, bias, mult, N, vlo, vhi, vz, ys + p);
    }
}
#endif

typedef void (*tile_fn)(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K, int32_t N,
                        int32_t zy, int8_t *const *ys);

#if LK_ARM
static void dot_i8_neon(const int8_t *x, int32_t P, const int8_t *w, int32_t Kp, int32_t N,
                        int32_t *acc);

/* MODE_I8 (plain NEON) pixels: one dot row per output, 64 outputs at a time on the stack. */
static void neon_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K, int32_t N,
                        int32_t zy, int8_t *const *ys)
{
    const int32_t Kp = kpad(K);
    const int8_t *w = (const int8_t *)packed_w(L);
    const int32_t *bias = (const int32_t *)(const void *)((const uint8_t *)w + up16((size_t)N * Kp));
    const float lo = (float)(L->act_min - zy), hi = (float)(L->act_max - zy);
    int32_t acc[64];
    for (int p = 0; p < P; p++)
        for (int32_t n0 = 0; n0 < N; n0 += 64) {
            const int32_t nc = N - n0 < 64 ? N - n0 : 64;
            dot_i8_neon((const int8_t *)xs[p], 1, w + (size_t)n0 * Kp, Kp, nc, acc);
            int32_t i = 0;
            for (; i + 4 <= nc; i += 4)
                requant4_neon(vld1q_s32(acc + i), bias + n0 + i, L->multiplier + n0 + i,
                              vdupq_n_f32(lo), vdupq_n_f32(hi), vdupq_n_s32(zy), ys[p] + n0 + i, 4);
            for (; i < nc; i++)
                ys[p][n0 + i] = lk_requant(acc[i] + bias[n0 + i], L->multiplier[n0 + i], lo, hi, zy);
        }
}
#endif

#if LK_X86 && LK_X86_VNNI
/* MODE_VNNI / MODE_VNNI512: lk_vnni.c's tiles on this layer's packed operands. */
static void vnni_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K, int32_t N,
                        int32_t zy, int8_t *const *ys)
{
    const int mode = packed_mode(L);
    const int32_t K4 = tile_k4(mode, K), NP = tile_nb(mode, N) * tile_bw(mode);
    lk_vnni_args a;
    a.tiles = (const int8_t *)packed_w(L);
    a.bias = (const int32_t *)(const void *)(a.tiles + (size_t)NP * 4u * (size_t)K4);
    a.mult = (const float *)(const void *)(a.bias + NP);
    a.K4 = K4;
    a.N = N;
    a.lo = (float)(L->act_min - zy);
    a.hi = (float)(L->act_max - zy);
    a.zy = zy;
    if (mode == MODE_VNNI512) lk_avx512vnni_pixels(xs, P, &a, ys);
    else lk_avxvnni_pixels(xs, P, &a, ys);
}
#endif

static tile_fn tile_kernel(int mode)
{
#if LK_X86
    if (mode == MODE_U8S8) return u8s8_pixels;
    if (mode == MODE_I16) return i16_pixels;
#if LK_X86_VNNI
    if (mode == MODE_VNNI || mode == MODE_VNNI512) return vnni_pixels;
#endif
#endif
#if LK_ARM
    if (mode == MODE_SDOT) return sdot_pixels;
    if (mode == MODE_I8) return neon_pixels;
#endif
    (void)mode;
    return NULL;
}

/* P gathered patches (consecutive, Kp elements each) against every packed weight row. */
static void dots(int variant, int mode, const void *patch, int32_t P, const lk_layer *L,
                 int32_t Kp, int32_t N, int32_t *acc)
{
    const void *w = packed_w(L);
#if LK_X86
#endif
#if LK_ARM
    dot_i8_neon(patch, P, w, Kp, N, acc);
    return;
#endif
    (void)variant; (void)mode; (void)patch; (void)P; (void)w; (void)Kp; (void)N; (void)acc;
}

static void requant_row(int variant, const lk_layer *L, const int32_t *acc, const int32_t *bias,
                        int32_t N, int32_t zy, int8_t *y)
{
#if LK_X86
    if (lk_x86_simd(variant)) { requant_avx2(L, acc, bias, N, zy, y); return; }
#endif
    (void)variant;
    const float lo = (float)(L->act_min - zy), hi = (float)(L->act_max - zy);
    int32_t n = 0;
#if LK_ARM
    /* 4 lanes at a time (measured under qemu: the depthwise layer of cnn2d_32 spent ~120k
     * of its instructions per inference in the scalar loop below) */
    const float32x4_t vlo = vdupq_n_f32(lo), vhi = vdupq_n_f32(hi);
    const int32x4_t vz = vdupq_n_s32(zy);
    for (; n + 4 <= N; n += 4)
        requant4_neon(vld1q_s32(acc + n), bias + n, L->multiplier + n, vlo, vhi, vz, y + n, 4);
#endif
    for (; n < N; n++) y[n] = lk_requant(acc[n] + bias[n], L->multiplier[n], lo, hi, zy);
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
        const uint8_t flip = u8_input(mode) ? 0x80u : 0u;
        if (xp) for (int32_t c = 0; c < C; c++) p[c] = (uint8_t)xp[c] ^ flip;
        else memset(p, (uint8_t)zx ^ flip, (size_t)C);
    }
}

int lk_simd_dense(const lk_model *m, const lk_layer *L, uint8_t *arena, void *scratch)
{
    const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
    const int32_t K = X->shape[X->ndim - 1], N = Y->shape[Y->ndim - 1], Kp = kpad(K);
    const int32_t rows = lk_tensor_size(X) / K, zx = X->zero_point, v = m->variant;
    const int mode = packed_mode(L);
    if (tiled(mode)) {
        const tile_fn kernel = tile_kernel(mode);
        uint8_t *patch = (uint8_t *)scratch;
        memset(patch, 0, 4u * (size_t)tile_k4(mode, K));
        for (int32_t r = 0; r < rows; r++) {
            put_pixel(mode, patch, 0, (const int8_t *)(arena + X->offset) + (size_t)r * K, K, zx);
            const uint8_t *xs[1] = {patch};
            int8_t *ys[1] = {(int8_t *)(arena + Y->offset) + (size_t)r * N};
            kernel(xs, 1, L, K, N, Y->zero_point, ys);
        }
        return LK_OK;
    }
    int32_t *acc = (int32_t *)scratch;   /* MODE_I8 (plain NEON) */
    void *patch = acc + up16((size_t)N);
    const int32_t *bias = packed_bias(L, N, Kp);
    memset(patch, 0, (size_t)Kp);
    for (int32_t r = 0; r < rows; r++) {
        put_pixel(mode, patch, 0, (const int8_t *)(arena + X->offset) + (size_t)r * K, K, zx);
        dots(v, mode, patch, 1, L, Kp, N, acc);
        requant_row(v, L, acc, bias, N, Y->zero_point,
                    (int8_t *)(arena + Y->offset) + (size_t)r * N);
    }
    return LK_OK;
}

static int depthwise(const lk_model *m, const lk_layer *L, uint8_t *arena, int32_t *acc)
{
    lk_conv_geom g;
    lk_conv_geometry(m, L, &g);
    const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
    const int8_t *x = (const int8_t *)(arena + X->offset);
    int8_t *y = (int8_t *)(arena + Y->offset);
    const int16_t *w = (const int16_t *)packed_w(L);
    const int32_t zx = X->zero_point, C = g.C;
    for (int32_t oy = 0; oy < g.OH; oy++)
        for (int32_t ox = 0; ox < g.OW; ox++) {
#if LK_X86
            if (lk_x86_simd(m->variant)) {
                depthwise_avx2(&g, x, zx, w, oy, ox, acc);
                requant_row(m->variant, L, acc, L->bias, C, Y->zero_point,
                            y + ((size_t)oy * g.OW + ox) * C);
                continue;
            }
#endif
            for (int32_t c = 0; c < C; c++) acc[c] = 0;
            for (int32_t ki = 0; ki < g.KH; ki++) {
                const int32_t iy = oy * g.SH - g.PT + ki * g.DH;
                if (iy < 0 || iy >= g.H) continue;
                for (int32_t kj = 0; kj < g.KW; kj++) {
                    const int32_t ix = ox * g.SW - g.PL + kj * g.DW;
                    if (ix < 0 || ix >= g.W) continue;
                    const int8_t *xp = x + ((size_t)iy * g.W + ix) * C;
                    const int16_t *wp = w + (size_t)(ki * g.KW + kj) * C;
                    for (int32_t c = 0; c < C; c++) acc[c] += (int32_t)(int16_t)(xp[c] - zx) * wp[c];
                }
            }
            requant_row(m->variant, L, acc, L->bias, C, Y->zero_point,
                        y + ((size_t)oy * g.OW + ox) * C);
        }
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
    const tile_fn kernel = tile_kernel(mode);
    const int32_t Hp = g->H + L->pad_t + L->pad_b, Wp = g->W + L->pad_l + L->pad_r, C = g->C;
    const size_t e = (size_t)esz(mode), row = (size_t)Wp * C * e, cb = (size_t)C * e;
    uint8_t *xp = (uint8_t *)scratch;
    uint8_t *patches = xp + up16((size_t)Hp * row + 64u);
    const size_t pstride = up16(4u * (size_t)tile_k4(mode, g->K) + 32u);
    const int32_t width = g->W * C;      /* locals: a byte store may alias *g, which */
    if (mode == MODE_I16) {              /* would stop these loops from vectorizing */
        memset(xp, 0, (size_t)Hp * row + 64u);
        for (int32_t i = 0; i < g->H; i++) {
            const int8_t *restrict src = x + (size_t)i * width;
            int16_t *restrict dst = (int16_t *)(void *)(xp + (size_t)(i + L->pad_t) * row + (size_t)L->pad_l * cb);
            for (int32_t k = 0; k < width; k++) dst[k] = (int16_t)(src[k] - zx);
        }
    } else {
        const uint8_t flip = u8_input(mode) ? 0x80u : 0u;
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
    for (int32_t pix = 0; pix < npix; pix += 4) {
        const int P = npix - pix >= 4 ? 4 : 1;
        const int count = npix - pix >= 4 ? 4 : npix - pix;
        for (int q = 0; q < count; q += P) {
            const uint8_t *xs[4];
            int8_t *ys[4];
            for (int p = 0; p < P; p++) {
                const int32_t at = pix + q + p, oy = at / g->OW, ox = at % g->OW;
                const uint8_t *origin = xp + (size_t)(oy * g->SH) * row + (size_t)(ox * g->SW) * cb;
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
    const int mode = packed_mode(L);
    if (mode == MODE_DW) return depthwise(m, L, arena, scratch);
    lk_conv_geom g;
    lk_conv_geometry(m, L, &g);
    const lk_tensor *X = &m->tensors[L->in[0]], *Y = &m->tensors[L->out];
    return conv_tiled(mode, L, &g, (const int8_t *)(arena + X->offset), X->zero_point,
                      (int8_t *)(arena + Y->offset), Y->zero_point, scratch);
}

/* ------------------------------------------------------------------ add (AVX2 + FMA) */

#if LK_X86
/* QLinearAdd 8 elements at a time: vfmadd231ps rounds once, exactly like fmaf, so
 * t = fma(b, rb, fixed), y = fma(a, ra, t), clamp, round half to even (vcvtps2dq) is the
 * scalar lk_add bit for bit. */
__attribute__((target("avx2,fma")))
static void add_avx2(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, float ra, float rb,
                     float fixed, float lo, float hi)
{
    const __m256 vra = _mm256_set1_ps(ra), vrb = _mm256_set1_ps(rb), vfix = _mm256_set1_ps(fixed);
    const __m256 vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    int32_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 fa = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(a + i))));
        const __m256 fb = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(b + i))));
        __m256 v = _mm256_fmadd_ps(fa, vra, _mm256_fmadd_ps(fb, vrb, vfix));
        v = _mm256_min_ps(_mm256_max_ps(v, vlo), vhi);
        const __m256i q = _mm256_cvtps_epi32(v);
        const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        _mm_storel_epi64((__m128i *)(void *)(y + i), _mm_packs_epi16(q16, q16));
    }
    for (; i < n; i++) {
        float v = fmaf((float)a[i], ra, fmaf((float)b[i], rb, fixed));
        y[i] = (int8_t)lk_round_even(lk_clampf(v, lo, hi));
    }
}
#endif

int lk_simd_add(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
#if LK_X86
    const lk_tensor *A = &m->tensors[L->in[0]], *B = &m->tensors[L->in[1]], *Y = &m->tensors[L->out];
    const int32_t n = lk_tensor_size(Y);
    if (lk_x86_simd(m->variant) && lk_tensor_size(B) == n && __builtin_cpu_supports("fma")) {
        const float ra = A->scale / Y->scale, rb = B->scale / Y->scale;
        const float fixed = (float)Y->zero_point -
                            (ra * (float)A->zero_point + rb * (float)B->zero_point);
        add_avx2((const int8_t *)(arena + A->offset), (const int8_t *)(arena + B->offset),
                 (int8_t *)(arena + Y->offset), n, ra, rb, fixed, (float)L->act_min,
                 (float)L->act_max);
        return LK_OK;
    }
#endif
    return lk_add(m, L, arena);
}

#endif /* the SIMD variants */
