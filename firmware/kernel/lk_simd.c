/*
 * lk_simd.c -- packed-weight conv/dense for the SIMD variants (filled in per ISA).
 */
#include "lk_internal.h"

size_t lk_simd_packed_size(const lk_model *m, const lk_layer *L, int variant)
{
    (void)m; (void)L; (void)variant;
    return 0;
}

void lk_simd_pack(const lk_model *m, lk_layer *L, int variant, void *buf)
{
    (void)m; (void)L; (void)variant; (void)buf;
}

size_t lk_simd_scratch_size(const lk_model *m, const lk_layer *L, int variant)
{
    (void)m; (void)L; (void)variant;
    return 0;
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
