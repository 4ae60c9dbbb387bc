/*
 * lk_vnni.c -- conv/dense tiles for x86 CPUs with VNNI: AVX-VNNI (256-bit, VEX: Alder
 * Lake and later cores, Sapphire Rapids) and AVX-512 VNNI (512-bit: Cascade Lake, Ice
 * Lake, Sapphire Rapids, Zen 4). The per-ISA file beside the scalar reference (lk_ops.c)
 * and AVX2 (lk_avx2.c), as TFLite Micro keeps its optimized kernels; lk_simd.c packs the
 * weights and pads the input, this file only sums and requantizes.
 *
 * The arithmetic is exactly the AVX2 MODE_U8S8 path's, with one instruction per 4 MACs:
 * vpdpbusd multiplies 4 unsigned bytes (input x + 128) by 4 signed bytes (weight) and adds
 * the 4 products to an int32 lane WITHOUT intermediate saturation (unlike AVX2's
 * vpmaddubsw pairs, which saturate at 16 bits; the saturating form, vpdpbusds, is never
 * used). Every product is at most 255 * 128 in size, so full-range 8-bit weights are exact
 * too, and the +128 offset is folded into the bias at pack time:
 *     acc = (bias - (zx + 128) * sum(w)) + sum((x + 128) * w) = bias + sum((x - zx) * w).
 * The int32 sums are the scalar kernel's integers; requantization is lk_requant's float32
 * multiply, clamp, round half to even (vcvtps2dq in the default rounding mode), + zy.
 *
 * Tiles: P pixels x NBT blocks of BW outputs held in registers (AVX-512: 4 x 4 blocks of
 * 16 = 64 outputs, 16 zmm accumulators; AVX-VNNI: 4 x 2 blocks of 8). Each step broadcasts
 * 4 input bytes of each pixel and loads one 4-k slice of each weight block.
 *
 * Built on every target; on non-x86 (aarch64, microcontrollers) it is empty.
 */
#include "lk_pack.h"
#include "lk_x86.h"

#if defined(LK_X86) && LK_X86_VNNI

#define LK_T256 __attribute__((target("avx2,avxvnni")))
#define LK_T512 __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))

static inline int32_t load4(const uint8_t *p)
{
    int32_t q;
    memcpy(&q, p, 4);
    return q;
}

/* ------------------------------------------------------------------ AVX-VNNI, 256-bit */

LK_T256 __attribute__((always_inline))
static inline void tile256(const uint8_t *const *xs, const int P, const lk_tile_args *a,
                           int32_t nb, const int NBT, __m256 vlo, __m256 vhi, __m256i vz,
                           int8_t *const *ys)
{
    const int32_t K4 = a->K4;
    const int8_t *w = a->tiles + (size_t)nb * (size_t)K4 * 32u;
    __m256i acc[4][4];
#pragma GCC unroll 4
    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
        for (int j = 0; j < NBT; j++) acc[p][j] = _mm256_setzero_si256();
    for (int32_t kq = 0; kq < K4; kq++) {
        __m256i xb[4];
#pragma GCC unroll 4
        for (int p = 0; p < P; p++) xb[p] = _mm256_set1_epi32(load4(xs[p] + 4 * kq));
#pragma GCC unroll 4
        for (int j = 0; j < NBT; j++) {
            const __m256i wv = _mm256_loadu_si256(
                (const __m256i *)(const void *)(w + ((size_t)j * K4 + kq) * 32u));
#pragma GCC unroll 4
            for (int p = 0; p < P; p++) acc[p][j] = _mm256_dpbusd_avx_epi32(acc[p][j], xb[p], wv);
        }
    }
#pragma GCC unroll 4
    for (int p = 0; p < P; p++)
#pragma GCC unroll 4
        for (int j = 0; j < NBT; j++) {
            const int32_t n0 = 8 * (nb + j);
            lk_requant8_avx2(acc[p][j], a->bias + n0, a->mult + n0, vlo, vhi, vz, ys[p] + n0,
                             a->N - n0);
        }
}

LK_T256
void lk_avxvnni_pixels(const uint8_t *const *xs, int P, const lk_tile_args *a, int8_t *const *ys)
{
    const int32_t NB = a->NB;
    const __m256 vlo = _mm256_set1_ps(a->lo), vhi = _mm256_set1_ps(a->hi);
    const __m256i vz = _mm256_set1_epi32(a->zy);
    int32_t nb = 0;
    if (P == 4) {
        for (; nb + 2 <= NB; nb += 2) tile256(xs, 4, a, nb, 2, vlo, vhi, vz, ys);
        if (nb < NB) tile256(xs, 4, a, nb, 1, vlo, vhi, vz, ys);
        return;
    }
    for (int p = 0; p < P; p++) {   /* one pixel (dense, conv tails): 4 blocks in flight */
        for (nb = 0; nb + 4 <= NB; nb += 4) tile256(xs + p, 1, a, nb, 4, vlo, vhi, vz, ys + p);
        for (; nb < NB; nb++) tile256(xs + p, 1, a, nb, 1, vlo, vhi, vz, ys + p);
    }
}

/* ------------------------------------------------------------------ AVX-512 VNNI */

/* lk_requant on 16 lanes (same float32 operations as lk_requant8_avx2); the clamp keeps
 * every value in int8 range, so vpmovdb's truncation is exact. */
LK_T512 __attribute__((always_inline))
static inline void requant16(__m512i acc, const int32_t *bias, const float *mult, __m512 vlo,
                             __m512 vhi, __m512i vz, int8_t *y, int32_t count)
{
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(acc, _mm512_loadu_si512(bias))),
                             _mm512_loadu_ps(mult));
    v = _mm512_min_ps(_mm512_max_ps(v, vlo), vhi);
    const __m128i q8 = _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_cvtps_epi32(v), vz));
    if (count >= 16) _mm_storeu_si128((__m128i *)(void *)y, q8);
    else _mm_mask_storeu_epi8(y, (__mmask16)((1u << count) - 1u), q8);
}

LK_T512 __attribute__((always_inline))
static inline void tile512(const uint8_t *const *xs, const int P, const lk_tile_args *a,
                           int32_t nb, const int NBT, __m512 vlo, __m512 vhi, __m512i vz,
                           int8_t *const *ys)
{
    const int32_t K4 = a->K4;
    const int8_t *w = a->tiles + (size_t)nb * (size_t)K4 * 64u;
    __m512i acc[4][8];
#pragma GCC unroll 4
    for (int p = 0; p < P; p++)
#pragma GCC unroll 8
        for (int j = 0; j < NBT; j++) acc[p][j] = _mm512_setzero_si512();
    for (int32_t kq = 0; kq < K4; kq++) {
        __m512i xb[4];
#pragma GCC unroll 4
        for (int p = 0; p < P; p++) xb[p] = _mm512_set1_epi32(load4(xs[p] + 4 * kq));
#pragma GCC unroll 8
        for (int j = 0; j < NBT; j++) {
            const __m512i wv = _mm512_loadu_si512(w + ((size_t)j * K4 + kq) * 64u);
#pragma GCC unroll 4
            for (int p = 0; p < P; p++) acc[p][j] = _mm512_dpbusd_epi32(acc[p][j], xb[p], wv);
        }
    }
#pragma GCC unroll 4
    for (int p = 0; p < P; p++)
#pragma GCC unroll 8
        for (int j = 0; j < NBT; j++) {
            const int32_t n0 = 16 * (nb + j);
            requant16(acc[p][j], a->bias + n0, a->mult + n0, vlo, vhi, vz, ys[p] + n0, a->N - n0);
        }
}

LK_T512
void lk_avx512vnni_pixels(const uint8_t *const *xs, int P, const lk_tile_args *a, int8_t *const *ys)
{
    const int32_t NB = a->NB;
    const __m512 vlo = _mm512_set1_ps(a->lo), vhi = _mm512_set1_ps(a->hi);
    const __m512i vz = _mm512_set1_epi32(a->zy);
    int32_t nb = 0;
    if (P == 4) {
        for (; nb + 4 <= NB; nb += 4) tile512(xs, 4, a, nb, 4, vlo, vhi, vz, ys);
        if (nb + 2 <= NB) {
            tile512(xs, 4, a, nb, 2, vlo, vhi, vz, ys);
            nb += 2;
        }
        if (nb < NB) tile512(xs, 4, a, nb, 1, vlo, vhi, vz, ys);
        return;
    }
    for (int p = 0; p < P; p++) {   /* one pixel (dense, conv tails): 8 blocks in flight */
        for (nb = 0; nb + 8 <= NB; nb += 8) tile512(xs + p, 1, a, nb, 8, vlo, vhi, vz, ys + p);
        if (nb + 4 <= NB) {
            tile512(xs + p, 1, a, nb, 4, vlo, vhi, vz, ys + p);
            nb += 4;
        }
        for (; nb < NB; nb++) tile512(xs + p, 1, a, nb, 1, vlo, vhi, vz, ys + p);
    }
}


/* MODE_VNNI / MODE_VNNI512 (lk_pack.h's tile_fn): the tiles above on this layer's packed
 * operands. */
void lk_vnni_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K, int32_t N,
                    int32_t zy, int8_t *const *ys)
{
    const int mode = lk_packed_mode(L);
    const lk_tile_args a = lk_tile_args_of(L, mode, K, N, zy);
    if (mode == MODE_VNNI512) lk_avx512vnni_pixels(xs, P, &a, ys);
    else lk_avxvnni_pixels(xs, P, &a, ys);
}

#else
typedef int lk_vnni_not_built; /* ISO C wants at least one declaration per file */
#endif
