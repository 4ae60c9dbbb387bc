/*
 * lk_sdot.c -- the NEON dot-product (SDOT, armv8.2-a+dotprod: Cortex-A76/A78, so Pi 5 and
 * Jetson Orin) conv/dense tiles.
 *
 * The per-ISA file beside the scalar reference (lk_ops.c), as TFLite Micro keeps its
 * optimized kernels apart; lk_simd.c packs the weights (MODE_SDOT: [N/4][K/4][4 outputs][4 k],
 * the input zero point folded into the bias) and gathers the patches (raw int8 x, padding
 * zx). sdot by lane multiplies 4 weight bytes of each of 4 outputs with 4 input bytes
 * broadcast from one 16-byte load: exact int32 sums, 4 pixels x 16 outputs per tile, then
 * lk_requant4_neon (lk_arm.h). The functions carry their target attribute, so the file
 * builds with baseline -march and lk_variant_supported() decides at run time. Empty on
 * other targets.
 */
#include "lk_pack.h"
#include "lk_arm.h"

#if LK_ARM
/* One SDOT tile: P pixels x NBT blocks of 4 outputs; sdot by lane multiplies 4 weight
 * bytes of each of 4 outputs with 4 input bytes broadcast from one 16-byte input load. */
#define SDOT_LANE(l)                                                                   \
    do {                                                                               \
        for (int j = 0; j < NBT; j++) {                                                \
            const int8x16_t wv = vld1q_s8(t->tiles + ((size_t)(nb + j) * t->K4 + kq + (l)) * 16u); \
            for (int p = 0; p < P; p++) a[p][j] = vdotq_laneq_s32(a[p][j], wv, xv[p], l); \
        }                                                                              \
    } while (0)

__attribute__((target("arch=armv8.2-a+dotprod"), always_inline))
static inline void sdot_tile(const int8_t *const *xs, const int P, const lk_tile_args *t,
                             int32_t nb, const int NBT, float32x4_t vlo, float32x4_t vhi,
                             int32x4_t vz, int8_t *const *ys)
{
    int32x4_t a[4][4];
    for (int p = 0; p < P; p++)
        for (int j = 0; j < NBT; j++) a[p][j] = vdupq_n_s32(0);
    for (int32_t kq = 0; kq < t->K4; kq += 4) {
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
            lk_requant4_neon(a[p][j], t->bias + n0, t->mult + n0, vlo, vhi, vz, ys[p] + n0, t->N - n0);
        }
}

__attribute__((target("arch=armv8.2-a+dotprod")))
void lk_sdot_pixels(const uint8_t *const *xs8, int P, const lk_layer *L, int32_t K, int32_t N,
                    int32_t zy, int8_t *const *ys)
{
    const int8_t *const *xs = (const int8_t *const *)xs8;
    const lk_tile_args t = lk_tile_args_of(L, MODE_SDOT, K, N, zy);
    const float32x4_t vlo = vdupq_n_f32(t.lo), vhi = vdupq_n_f32(t.hi);
    const int32x4_t vz = vdupq_n_s32(t.zy);
    int32_t nb = 0;
    if (P == 4) {
        for (; nb + 4 <= t.NB; nb += 4) sdot_tile(xs, 4, &t, nb, 4, vlo, vhi, vz, ys);
        for (; nb < t.NB; nb++) sdot_tile(xs, 4, &t, nb, 1, vlo, vhi, vz, ys);
        return;
    }
    for (int p = 0; p < P; p++) {
        for (nb = 0; nb + 4 <= t.NB; nb += 4) sdot_tile(xs + p, 1, &t, nb, 4, vlo, vhi, vz, ys + p);
        for (; nb < t.NB; nb++) sdot_tile(xs + p, 1, &t, nb, 1, vlo, vhi, vz, ys + p);
    }
}

#else
typedef int lk_sdot_not_built; /* ISO C wants at least one declaration per file */
#endif
