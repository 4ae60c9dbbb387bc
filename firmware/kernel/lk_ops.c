/*
 * lk_ops.c -- the scalar kernel of every IR operator: portable C11, no allocation.
 *
 * These loops are written to read like lanthorn.device.engine_ref / int8.py, which they
 * match bit for bit; the SIMD variants (lk_simd.c) replace only conv/dense inner products
 * and are tested against these.
 */
#include "lk_internal.h"

#define T(i) (&m->tensors[(i)])
#define I8(t) ((int8_t *)(arena + (t)->offset))

void lk_conv_geometry(const lk_model *m, const lk_layer *L, lk_conv_geom *g)
{
    const lk_tensor *X = T(L->in[0]), *Y = T(L->out);
    g->H = X->shape[0]; g->W = X->shape[1]; g->C = X->shape[2];
    g->OH = Y->shape[0]; g->OW = Y->shape[1]; g->CO = Y->shape[2];
    g->KH = L->kh; g->KW = L->kw; g->SH = L->sh; g->SW = L->sw; g->DH = L->dh; g->DW = L->dw;
    g->PT = L->pad_t; g->PL = L->pad_l; g->G = L->groups;
    g->CG = g->C / g->G; g->CPG = g->CO / g->G; g->K = g->KH * g->KW * g->CG;
}

/* The in-bounds kernel taps [*k0, *k1) along one axis for output position o. */
static void taps(int32_t o, int32_t s, int32_t pad, int32_t d, int32_t k, int32_t n,
                 int32_t *k0, int32_t *k1)
{
    int32_t a = 0, b = k;
    while (a < b && o * s - pad + a * d < 0) a++;
    while (b > a && o * s - pad + (b - 1) * d >= n) b--;
    *k0 = a;
    *k1 = b;
}

/* acc[co] = bias[co] + sum over the window of (x - zx) * w; padded positions hold zx, so
 * they are skipped (they contribute exactly 0). Per output pixel the in-bounds taps are
 * found once; with one group and no horizontal dilation a kernel row is one contiguous
 * run of input and weights, so the inner loop is a plain dot product. */
int lk_conv_scalar(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    lk_conv_geom g;
    lk_conv_geometry(m, L, &g);
    const lk_tensor *X = T(L->in[0]), *Y = T(L->out);
    const int8_t *x = I8(X);
    int8_t *y = I8(Y);
    const int32_t zx = X->zero_point, zy = Y->zero_point;
    const int32_t C = g.C, CG = g.CG, KW = g.KW, contiguous = g.G == 1 && g.DW == 1;
    const float lo = (float)(L->act_min - zy), hi = (float)(L->act_max - zy);
    for (int32_t oy = 0; oy < g.OH; oy++) {
        int32_t ki0, ki1;
        taps(oy, g.SH, g.PT, g.DH, g.KH, g.H, &ki0, &ki1);
        for (int32_t ox = 0; ox < g.OW; ox++) {
            int32_t kj0, kj1;
            taps(ox, g.SW, g.PL, g.DW, g.KW, g.W, &kj0, &kj1);
            const int32_t ix0 = ox * g.SW - g.PL + kj0 * g.DW, run = (kj1 - kj0) * CG;
            /* a window entirely in the padding adds nothing: no row is read (ix0 may then
             * lie outside the input, so no pointer is even formed from it) */
            const int32_t rows_end = kj0 < kj1 ? ki1 : ki0;
            int8_t *yp = y + ((size_t)oy * g.OW + ox) * g.CO;
            for (int32_t co = 0; co < g.CO; co++) {
                const int32_t grp = co / g.CPG;
                const int8_t *w = L->weight + (size_t)co * g.K;
                int32_t acc = L->bias[co];
                for (int32_t ki = ki0; ki < rows_end; ki++) {
                    const int32_t iy = oy * g.SH - g.PT + ki * g.DH;
                    const int8_t *xp = x + ((size_t)iy * g.W + ix0) * C + grp * CG;
                    const int8_t *wp = w + (size_t)(ki * KW + kj0) * CG;
                    if (contiguous) {
                        acc += lk_dot_zx(xp, wp, run, zx);
                        continue;
                    }
                    for (int32_t kj = kj0; kj < kj1; kj++, xp += (size_t)g.DW * C, wp += CG)
                        acc += lk_dot_zx(xp, wp, CG, zx);
                }
                yp[co] = lk_requant(acc, L->multiplier[co], lo, hi, zy);
            }
        }
    }
    return LK_OK;
}

/* Every leading index of x (..., K) independently: acc[n] = bias[n] + sum (x - zx) w[n]. */
int lk_dense_scalar(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    const lk_tensor *X = T(L->in[0]), *Y = T(L->out);
    const int32_t K = X->shape[X->ndim - 1], N = Y->shape[Y->ndim - 1];
    const int32_t rows = lk_tensor_size(X) / K;
    const int32_t zx = X->zero_point, zy = Y->zero_point;
    const float lo = (float)(L->act_min - zy), hi = (float)(L->act_max - zy);
    for (int32_t r = 0; r < rows; r++) {
        const int8_t *x = I8(X) + (size_t)r * K;
        int8_t *y = I8(Y) + (size_t)r * N;
        for (int32_t n = 0; n < N; n++) {
            const int8_t *w = L->weight + (size_t)n * K;
            const int32_t acc = L->bias[n] + lk_dot_zx(x, w, K, zx);
            y[n] = lk_requant(acc, L->multiplier[n], lo, hi, zy);
        }
    }
    return LK_OK;
}

/* Max over the in-bounds window positions (ONNX MaxPool); no requantization. */
int lk_maxpool(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    const lk_tensor *X = T(L->in[0]), *Y = T(L->out);
    const int32_t H = X->shape[0], W = X->shape[1], C = X->shape[2];
    const int32_t OH = Y->shape[0], OW = Y->shape[1];
    const int8_t *x = I8(X);
    int8_t *y = I8(Y);
    for (int32_t oy = 0; oy < OH; oy++)
        for (int32_t ox = 0; ox < OW; ox++) {
            int8_t *yp = y + ((size_t)oy * OW + ox) * C;
            for (int32_t c = 0; c < C; c++) yp[c] = -128;
            for (int32_t ki = 0; ki < L->kh; ki++) {
                const int32_t iy = oy * L->sh - L->pad_t + ki * L->dh;
                if (iy < 0 || iy >= H) continue;
                for (int32_t kj = 0; kj < L->kw; kj++) {
                    const int32_t ix = ox * L->sw - L->pad_l + kj * L->dw;
                    if (ix < 0 || ix >= W) continue;
                    const int8_t *xp = x + ((size_t)iy * W + ix) * C;
                    for (int32_t c = 0; c < C; c++) {   /* branch-free: vectorizes */
                        const int8_t a = yp[c], b = xp[c];
                        yp[c] = a > b ? a : b;
                    }
                }
            }
        }
    return LK_OK;
}

/* QLinearAveragePool (int8.quantize_avg): dequantize in float32, sum from 0.0 in row-major
 * window order (padded cells would add +0.0: skipping them is exact), divide by the float
 * count, then nearbyint(avg / s_out + z_out) clamped to [-128, 127] (onnxruntime's int8 QDQ path).
 * Channels go in blocks of LK_BLOCK on the stack, so every channel's additions happen in
 * the same order as the reference while the loop over channels vectorizes. */
#define LK_BLOCK 64
int lk_avgpool(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    const lk_tensor *X = T(L->in[0]), *Y = T(L->out);
    const int32_t H = X->shape[0], W = X->shape[1], C = X->shape[2];
    const int32_t OH = Y->shape[0], OW = Y->shape[1];
    const int8_t *x = I8(X);
    int8_t *y = I8(Y);
    const int32_t zx = X->zero_point;
    const float sx = X->scale, sy = Y->scale, zy = (float)Y->zero_point;
    float sum[LK_BLOCK];
    for (int32_t oy = 0; oy < OH; oy++)
        for (int32_t ox = 0; ox < OW; ox++) {
            int8_t *yp = y + ((size_t)oy * OW + ox) * C;
            int32_t count = 0;
            for (int32_t ki = 0; ki < L->kh; ki++) {
                const int32_t iy = oy * L->sh - L->pad_t + ki * L->dh;
                for (int32_t kj = 0; kj < L->kw; kj++) {
                    const int32_t ix = ox * L->sw - L->pad_l + kj * L->dw;
                    count += (iy >= 0 && iy < H && ix >= 0 && ix < W);
                }
            }
            const float div = L->count_include_pad ? (float)(L->kh * L->kw) : (float)count;
            for (int32_t c0 = 0; c0 < C; c0 += LK_BLOCK) {
                const int32_t nc = C - c0 < LK_BLOCK ? C - c0 : LK_BLOCK;
                for (int32_t c = 0; c < nc; c++) sum[c] = 0.0f;
                for (int32_t ki = 0; ki < L->kh; ki++) {
                    const int32_t iy = oy * L->sh - L->pad_t + ki * L->dh;
                    if (iy < 0 || iy >= H) continue;
                    for (int32_t kj = 0; kj < L->kw; kj++) {
                        const int32_t ix = ox * L->sw - L->pad_l + kj * L->dw;
                        if (ix < 0 || ix >= W) continue;
                        const int8_t *xp = x + ((size_t)iy * W + ix) * C + c0;
                        for (int32_t c = 0; c < nc; c++) sum[c] += (float)((int32_t)xp[c] - zx) * sx;
                    }
                }
                for (int32_t c = 0; c < nc; c++) {
                    float v = (sum[c] / div) / sy;
                    v += zy;
                    v = lk_clampf(v, -128.0f, 127.0f);
                    yp[c0 + c] = (int8_t)(int32_t)lk_round_even(v);
                }
            }
        }
    return LK_OK;
}

/* QLinearGlobalAveragePool: acc = sum(x) - zx * n, multiplier s_in / (s_out * n). */
int lk_global_avgpool(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    const lk_tensor *X = T(L->in[0]), *Y = T(L->out);
    const int32_t n = X->shape[0] * X->shape[1], C = X->shape[2];
    const int8_t *x = I8(X);
    int8_t *y = I8(Y);
    const float mult = X->scale / (Y->scale * (float)n);
    const int32_t zy = Y->zero_point;
    const float lo = (float)(-128 - zy), hi = (float)(127 - zy);
    int32_t acc[LK_BLOCK];
    for (int32_t c0 = 0; c0 < C; c0 += LK_BLOCK) {
        const int32_t nc = C - c0 < LK_BLOCK ? C - c0 : LK_BLOCK;
        for (int32_t c = 0; c < nc; c++) acc[c] = -X->zero_point * n;
        for (int32_t i = 0; i < n; i++) {
            const int8_t *xp = x + (size_t)i * C + c0;
            for (int32_t c = 0; c < nc; c++) acc[c] += xp[c];
        }
        for (int32_t c = 0; c < nc; c++) y[c0 + c] = lk_requant(acc[c], mult, lo, hi, zy);
    }
    return LK_OK;
}

/* Walk the elements of an n-d shape in row-major order, tracking a second offset with
 * arbitrary strides (broadcast: stride 0; transpose: permuted strides). */
typedef struct lk_walk {
    int32_t nd, idx[LK_MAX_DIMS], shape[LK_MAX_DIMS], stride[LK_MAX_DIMS];
    int64_t off;
} lk_walk;

static void lk_walk_next(lk_walk *w)
{
    for (int32_t d = w->nd - 1; d >= 0; d--) {
        w->off += w->stride[d];
        if (++w->idx[d] < w->shape[d]) return;
        w->off -= (int64_t)w->stride[d] * w->shape[d];
        w->idx[d] = 0;
    }
}

/* The walk over Y's elements that tracks B's offset when B broadcasts along Y's leading
 * axes (numpy's rule: axes aligned to the right, size-1 axes repeat): add and mul share it. */
static lk_walk lk_broadcast_walk(const lk_tensor *Y, const lk_tensor *B)
{
    lk_walk w = {0};
    w.nd = Y->ndim;
    int32_t bstride = 1;
    for (int32_t d = Y->ndim - 1; d >= 0; d--) {
        const int32_t bd = d - (Y->ndim - B->ndim);   /* B's axis aligned to the right */
        const int32_t bdim = bd >= 0 ? B->shape[bd] : 1;
        w.shape[d] = Y->shape[d];
        w.stride[d] = bdim == 1 ? 0 : bstride;
        bstride *= bdim;
    }
    return w;
}

/* QLinearAdd as MLAS's AVX2 kernel (int8.qlinear_add): t = fma(b, rb, fixed),
 * y = fma(a, ra, t), round half to even, clamp. b broadcasts along leading axes. */
int lk_add(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    const lk_tensor *A = T(L->in[0]), *B = T(L->in[1]), *Y = T(L->out);
    const float ra = A->scale / Y->scale, rb = B->scale / Y->scale;
    const float fixed = (float)Y->zero_point -
                        (ra * (float)A->zero_point + rb * (float)B->zero_point);
    const float lo = (float)L->act_min, hi = (float)L->act_max;
    const int8_t *a = I8(A), *b = I8(B);
    int8_t *y = I8(Y);
    const int32_t n = lk_tensor_size(Y);
    lk_walk w = lk_broadcast_walk(Y, B);
    for (int32_t i = 0; i < n; i++) {
        const float t = LK_FMA(b[w.off], rb, fixed);
        float v = LK_FMA(a[i], ra, t);
        v = lk_clampf(v, lo, hi);
        y[i] = (int8_t)lk_round_even(v);
        lk_walk_next(&w);
    }
    return LK_OK;
}

/* QLinearMul as MLAS computes it for int8 (int8.qlinear_mul): p = (a - za) * (b - zb) in
 * int32, v = float(p) * ratio + zc (a multiply, then an add: no FMA), round half to even,
 * clamp. ratio = (sa * sb) / sc in float32. b broadcasts along leading axes, as in add. */
int lk_mul(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    const lk_tensor *A = T(L->in[0]), *B = T(L->in[1]), *Y = T(L->out);
    const float prod_scale = A->scale * B->scale;
    const float ratio = prod_scale / Y->scale, zc = (float)Y->zero_point;
    const float lo = (float)L->act_min, hi = (float)L->act_max;
    const int32_t za = A->zero_point, zb = B->zero_point;
    const int8_t *a = I8(A), *b = I8(B);
    int8_t *y = I8(Y);
    const int32_t n = lk_tensor_size(Y);
    lk_walk w = lk_broadcast_walk(Y, B);
    for (int32_t i = 0; i < n; i++) {
        const int32_t p = ((int32_t)a[i] - za) * ((int32_t)b[w.off] - zb);
        float v = (float)p * ratio;
        v = v + zc;
        v = lk_round_even(lk_clampf(v, -128.0f, 127.0f));
        v = lk_clampf(v, lo, hi);
        y[i] = (int8_t)(int32_t)v;
        lk_walk_next(&w);
    }
    return LK_OK;
}

/* Join along axis; inputs with other quantization go through their 256-entry table. */
int lk_concat(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    const lk_tensor *Y = T(L->out);
    int32_t outer = 1, inner = 1;
    for (int32_t d = 0; d < L->axis; d++) outer *= Y->shape[d];
    for (int32_t d = L->axis + 1; d < Y->ndim; d++) inner *= Y->shape[d];
    const int32_t ystep = Y->shape[L->axis] * inner;
    int8_t *y = I8(Y);
    int32_t start = 0;
    for (int32_t i = 0; i < L->n_in; i++) {
        const lk_tensor *X = T(L->in[i]);
        const int32_t block = X->shape[L->axis] * inner;
        const int8_t *x = I8(X), *tab = L->tables[i];
        for (int32_t o = 0; o < outer; o++) {
            const int8_t *src = x + (size_t)o * block;
            int8_t *dst = y + (size_t)o * ystep + start;
            if (tab == NULL) memcpy(dst, src, (size_t)block);
            else
                for (int32_t k = 0; k < block; k++) dst[k] = tab[(uint8_t)src[k] ^ 0x80u];
        }
        start += block;
    }
    return LK_OK;
}

/* Row-major order is unchanged; when the planner aliased in and out there is no work. */
int lk_reshape(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    const lk_tensor *X = T(L->in[0]), *Y = T(L->out);
    if (X->offset != Y->offset) memmove(I8(Y), I8(X), (size_t)lk_tensor_size(X));
    return LK_OK;
}

/* numpy transpose: out.shape[d] = x.shape[perm[d]]. */
int lk_transpose(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    const lk_tensor *X = T(L->in[0]), *Y = T(L->out);
    int32_t xstride[LK_MAX_DIMS];
    int32_t s = 1;
    for (int32_t d = X->ndim - 1; d >= 0; d--) { xstride[d] = s; s *= X->shape[d]; }
    /* walk the outer output axes; the innermost one is a plain strided copy */
    lk_walk w = {0};
    w.nd = Y->ndim > 0 ? Y->ndim - 1 : 0;
    for (int32_t d = 0; d < w.nd; d++) {
        w.shape[d] = Y->shape[d];
        w.stride[d] = xstride[L->perm[d]];
    }
    const int32_t inner = Y->ndim > 0 ? Y->shape[Y->ndim - 1] : 1;
    const int32_t step = Y->ndim > 0 ? xstride[L->perm[Y->ndim - 1]] : 1;
    const int8_t *x = I8(X);
    int8_t *y = I8(Y);
    const int32_t n = lk_tensor_size(Y);
    for (int32_t i = 0; i < n; i += inner) {
        const int8_t *src = x + w.off;
        int8_t *dst = y + i;
        for (int32_t j = 0; j < inner; j++) dst[j] = src[(size_t)j * step];
        lk_walk_next(&w);
    }
    return LK_OK;
}

int lk_lut(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    const lk_tensor *X = T(L->in[0]), *Y = T(L->out);
    const int8_t *x = I8(X), *tab = L->table;
    int8_t *y = I8(Y);
    const int32_t n = lk_tensor_size(X);
    if (L->rows > 1) {      /* one table per channel (the last axis): a per-channel affine */
        const int32_t c = L->rows;
        for (int32_t i = 0; i < n; i += c)
            for (int32_t k = 0; k < c; k++)
                y[i + k] = tab[(size_t)k * 256 + ((uint8_t)x[i + k] ^ 0x80u)];
        return LK_OK;
    }
    for (int32_t i = 0; i < n; i++) y[i] = tab[(uint8_t)x[i] ^ 0x80u];
    return LK_OK;
}

/* Embedding rows; negative indices count from the end (ONNX). Every index is checked
 * before anything is written, so a bad input changes nothing. */
int lk_gather(const lk_model *m, const lk_layer *L, uint8_t *arena)
{
    const lk_tensor *X = T(L->in[0]), *Y = T(L->out);
    const int32_t *idx = (const int32_t *)(const void *)(arena + X->offset);
    const int32_t n = lk_tensor_size(X), V = L->rows, D = Y->shape[Y->ndim - 1];
    for (int32_t i = 0; i < n; i++)
        if (idx[i] < -V || idx[i] >= V) return LK_ERR_INDEX;
    int8_t *y = I8(Y);
    for (int32_t i = 0; i < n; i++) {
        const int32_t r = idx[i] < 0 ? idx[i] + V : idx[i];
        memcpy(y + (size_t)i * D, L->table + (size_t)r * D, (size_t)D);
    }
    return LK_OK;
}
