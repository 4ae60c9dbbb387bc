/*
 * lk_pack.h -- the packed-weight layouts the SIMD variants share (not part of the API).
 *
 * lk_simd.c chooses a layer's mode, packs its weights once (lk_prepare) and pads its input
 * into patches; the per-ISA files (lk_avx2.c, lk_vnni.c, lk_neon.c, lk_sdot.c) only read
 * these layouts, sum exactly and requantize. The layouts themselves are described at the
 * top of lk_simd.c.
 */
#ifndef LK_PACK_H
#define LK_PACK_H

#include "lk_internal.h"

enum { MODE_NONE = 0, MODE_U8S8 = 1, MODE_I16 = 2, MODE_I8 = 3, MODE_DW = 4, MODE_SDOT = 5,
       MODE_VNNI = 6, MODE_VNNI512 = 7 };
enum { LK_PACK_HEADER = 16 };   /* bytes before the packed weights; the first int32 is the mode */

static inline int32_t lk_kpad(int32_t k) { return (k + 31) & ~31; }
static inline size_t lk_up16(size_t n) { return (n + 15u) & ~(size_t)15u; }

/* Outer-product tile modes: weights [N/BW][K4][BW outputs][4 bytes of k]. */
static inline int lk_tiled(int mode)
{
    return mode == MODE_U8S8 || mode == MODE_SDOT || mode == MODE_I16 || mode == MODE_VNNI ||
           mode == MODE_VNNI512;
}
/* Modes whose input is uint8 x + 128 (the offset folded into the bias). */
static inline int lk_u8_input(int mode)
{
    return mode == MODE_U8S8 || mode == MODE_VNNI || mode == MODE_VNNI512;
}
/* Outputs per block. */
static inline int32_t lk_tile_bw(int mode) { return mode == MODE_SDOT ? 4 : mode == MODE_VNNI512 ? 16 : 8; }
/* Bytes per input value in a patch. */
static inline int32_t lk_esz(int mode) { return mode == MODE_I16 ? 2 : 1; }
/* 4-byte input groups per patch row (4 int8 k, or 2 int16 k for MODE_I16). */
static inline int32_t lk_tile_k4(int mode, int32_t k)
{
    if (mode == MODE_I8) return lk_kpad(k) / 4;                  /* patch = one dot row */
    if (mode == MODE_I16) return (k + 1) / 2;
    return lk_u8_input(mode) ? (k + 3) / 4 : (k + 15) / 16 * 4;  /* SDOT reads 16 bytes */
}
static inline int32_t lk_tile_nb(int mode, int32_t n) { return (n + lk_tile_bw(mode) - 1) / lk_tile_bw(mode); }

static inline int lk_packed_mode(const lk_layer *L) { return *(const int32_t *)L->packed; }
static inline const void *lk_packed_w(const lk_layer *L)
{
    return (const uint8_t *)L->packed + LK_PACK_HEADER;
}
/* A tiled layer's operands after the tiles: the folded bias, then the multipliers, both
 * padded to whole blocks. */
static inline const int32_t *lk_tiled_bias(const lk_layer *L, int mode, int32_t K, int32_t N)
{
    const size_t np = (size_t)(lk_tile_nb(mode, N) * lk_tile_bw(mode));
    return (const int32_t *)(const void *)((const uint8_t *)lk_packed_w(L) +
                                           np * 4u * (size_t)lk_tile_k4(mode, K));
}
static inline const float *lk_tiled_mult(const lk_layer *L, int mode, int32_t K, int32_t N)
{
    return (const float *)(const void *)(lk_tiled_bias(L, mode, K, N) +
                                         lk_tile_nb(mode, N) * lk_tile_bw(mode));
}
/* A tiled layer's operands as every per-ISA tile loop reads them (AVX2, VNNI, SDOT): made
 * once per layer call by lk_tile_args_of, so the layout arithmetic is written here only. */
typedef struct lk_tile_args {
    const int8_t *tiles;
    const int32_t *bias;
    const float *mult;
    int32_t K4, NB, N;
    float lo, hi;      /* act_min - zy, act_max - zy: the clamp before + zy */
    int32_t zy;
} lk_tile_args;

static inline lk_tile_args lk_tile_args_of(const lk_layer *L, int mode, int32_t K, int32_t N,
                                           int32_t zy)
{
    lk_tile_args t;
    t.tiles = (const int8_t *)lk_packed_w(L);
    t.bias = lk_tiled_bias(L, mode, K, N);
    t.mult = lk_tiled_mult(L, mode, K, N);
    t.K4 = lk_tile_k4(mode, K);
    t.NB = lk_tile_nb(mode, N);
    t.N = N;
    t.lo = (float)(L->act_min - zy);
    t.hi = (float)(L->act_max - zy);
    t.zy = zy;
    return t;
}
/* MODE_I8's folded bias, after the [N][Kp] weight rows. */
static inline const int32_t *lk_i8_bias(const lk_layer *L, int32_t N, int32_t Kp)
{
    return (const int32_t *)(const void *)((const uint8_t *)lk_packed_w(L) + lk_up16((size_t)N * Kp));
}

/* MODE_DW (depthwise, groups == C == Cout): the driver pads the input once per layer into
 * scratch as int16 x - zx (border 0) with the channels padded to whole blocks of
 * LK_DW_CB, so every tap of every pixel is an unchecked load and the kernels have no
 * channel remainder. Taps are addressed by offsets from the pixel's window origin, made
 * once per layer (kernel rows and dilation folded in). Weights int16, per block of 16
 * channels, taps in pairs (an odd last tap paired with zeros):
 *   x86 [Cp/16][T2/2][2 halves][16]: half h of pair q holds, for the 16 positions j, the
 *       weight of channel (j/8)*8 + h*4 + (j%8)/2 at tap 2q + j%2 -- vpunpcklwd/hwd of two
 *       taps' inputs against it, then vpmaddwd, sums both taps per channel in int32 lanes;
 *       bias and multipliers per block in the same channel order [2 halves][8];
 *   ARM [Cp/16][T2][16] (channel-major within the block, smlal by 4 lanes), plain bias.
 * Products |x - zx| * |w| <= 255 * 128 and pair sums fit int32: exact. */
enum { LK_DW_CB = 16, LK_DW_MAX_TAPS = 64 };
static inline int32_t lk_dw_cp(int32_t c) { return (c + LK_DW_CB - 1) & ~(LK_DW_CB - 1); }
static inline int32_t lk_dw_t2(int32_t taps) { return (taps + 1) & ~1; }
typedef struct lk_dw_args {
    const int16_t *w;          /* packed weights, see above */
    const int32_t *bias;       /* [Cp], in the ISA's channel order */
    const float *mult;         /* [Cp], likewise (0 in the padding channels) */
    const ptrdiff_t *off;      /* [T2] int16 offsets of each tap from the window origin */
    int32_t T, C, Cp, OH, OW;
    ptrdiff_t pix_step, row_step; /* int16 elements between output pixels' / rows' origins */
    float lo, hi;              /* act_min - zy, act_max - zy */
    int32_t zy;
} lk_dw_args;

/* A mode's kernel: P (1..4) patches xs[p] (the mode's input form, K values each) against
 * every packed output, requantized into ys[p] (N int8 values each). */
typedef void (*lk_tile_fn)(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K,
                           int32_t N, int32_t zy, int8_t *const *ys);

/* The per-ISA kernels (each file is empty on other targets). */
void lk_avx2_u8s8_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K, int32_t N,
                         int32_t zy, int8_t *const *ys);                            /* lk_avx2.c */
void lk_avx2_i16_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K, int32_t N,
                        int32_t zy, int8_t *const *ys);
void lk_avx2_depthwise(const lk_dw_args *a, const int16_t *x, int8_t *y);
int32_t lk_avx2_requant_row(const lk_layer *L, const int32_t *acc, const int32_t *bias, int32_t N,
                            int32_t zy, int8_t *y);
void lk_avx2_widen_row(const int8_t *src, int16_t *dst, int32_t n, int32_t zx);
void lk_avx2_max_taps(const int8_t *x, const ptrdiff_t *off, int32_t n, int32_t C, int8_t *y);
void lk_avx2_add(const int8_t *a, const int8_t *b, int8_t *y, int32_t n, float ra, float rb,
                 float fixed, float lo, float hi);
void lk_vnni_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K, int32_t N,
                    int32_t zy, int8_t *const *ys);                                 /* lk_vnni.c */
void lk_neon_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K, int32_t N,
                    int32_t zy, int8_t *const *ys);                                 /* lk_neon.c */
void lk_neon_dot_i8(const int8_t *x, const int8_t *w, int32_t Kp, int32_t N, int32_t *acc);
int32_t lk_neon_requant_row(const lk_layer *L, const int32_t *acc, const int32_t *bias, int32_t N,
                            int32_t zy, int8_t *y);
void lk_neon_max_taps(const int8_t *x, const ptrdiff_t *off, int32_t n, int32_t C, int8_t *y);
void lk_neon_depthwise(const lk_dw_args *a, const int16_t *x, int8_t *y);
void lk_sdot_pixels(const uint8_t *const *xs, int P, const lk_layer *L, int32_t K, int32_t N,
                    int32_t zy, int8_t *const *ys);                                 /* lk_sdot.c */

#endif /* LK_PACK_H */
