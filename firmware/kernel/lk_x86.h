/*
 * lk_x86.h -- what the x86 SIMD files share (lk_avx2.c: AVX2; lk_vnni.c: AVX-VNNI and
 * AVX-512 VNNI; lk_simd.c asks lk_x86_simd). Not part of the API; empty on other targets.
 *
 * Every function carries its own target attribute, so the files build with baseline
 * flags (-O3, no -m options) and lk_variant_supported() decides at run time which code
 * may execute. A compiler that cannot emit the VNNI instructions (GCC < 11, clang < 12)
 * still builds AVX2; LK_X86_VNNI then stays 0 and the VNNI variants report "unsupported".
 */
#ifndef LK_X86_H
#define LK_X86_H

#include "lk_internal.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define LK_X86 1
#include <immintrin.h>


/* The x86 variants that run the AVX2 paths (depthwise, requantization, add): every x86
 * SIMD variant -- a CPU with AVX-VNNI or AVX-512 VNNI has AVX2. */
static inline int lk_x86_simd(int variant)
{
    return variant == LK_VARIANT_AVX2 || variant == LK_VARIANT_AVX_VNNI ||
           variant == LK_VARIANT_AVX512_VNNI;
}

/* lk_requant on the 8 lanes of one output block: the same float32 multiply, clamp,
 * round half to even (vcvtps2dq in the default rounding mode), zero-point add. */
__attribute__((target("avx2")))
static inline void lk_requant8_avx2(__m256i acc, const int32_t *bias, const float *mult,
                                    __m256 vlo, __m256 vhi, __m256i vz, int8_t *y, int32_t count)
{
    __m256 v = _mm256_mul_ps(
        _mm256_cvtepi32_ps(_mm256_add_epi32(acc, _mm256_loadu_si256((const __m256i *)(const void *)bias))),
        _mm256_loadu_ps(mult));
    v = _mm256_min_ps(_mm256_max_ps(v, vlo), vhi);
    const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), vz);
    const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
    const __m128i q8 = _mm_packs_epi16(q16, q16);
    if (count >= 8) {
        _mm_storel_epi64((__m128i *)(void *)y, q8);
    } else {
        int8_t tmp[16];
        _mm_storeu_si128((__m128i *)(void *)tmp, q8);
        memcpy(y, tmp, (size_t)count);
    }
}

/* One VNNI layer's packed operands (lk_simd.c packs them, lk_vnni.c runs them):
 * tiles int8 [N/BW][K4][BW outputs][4 k] (BW = 8 for AVX-VNNI, 16 for AVX-512), the
 * bias with the input offset folded in and the multipliers, both padded to whole blocks;
 * patches are uint8 x + 128, 4 * K4 bytes. */
/* P (1..4) pixels x all N outputs; ys[p] receives N int8 values. */
void lk_avxvnni_pixels(const uint8_t *const *xs, int P, const lk_tile_args *a, int8_t *const *ys);
void lk_avx512vnni_pixels(const uint8_t *const *xs, int P, const lk_tile_args *a, int8_t *const *ys);

#endif /* x86 */
#endif /* LK_X86_H */
