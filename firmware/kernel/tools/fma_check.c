/*
 * fma_check: lk_fma_int (the exact integer FMA used on cores without a hardware FMA) against
 * the C library's fmaf on random int8 x float32 + float32 cases, including exact ties and
 * cancellations. Prints the mismatch count; exit status 1 on any mismatch.
 *
 *   cc -O2 -std=c11 -ffp-contract=off -I.. fma_check.c -lm && ./a.out [N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <math.h>
#include "lk_internal.h"
static uint64_t s = 88172645463325252ull;
static uint64_t rnd(void) { s ^= s << 13; s ^= s >> 7; s ^= s << 17; return s; }
static float rf(int bits, int emin, int emax) {   /* random float with `bits` mantissa bits */
    uint32_t m = (uint32_t)(rnd() & ((1u << bits) - 1)) | (1u << bits);
    int e = emin + (int)(rnd() % (uint64_t)(emax - emin + 1));
    float v = ldexpf((float)m, e - bits);
    return (rnd() & 1) ? -v : v;
}
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 10000000, bad = 0;
    for (long i = 0; i < n; i++) {
        int32_t a = (int32_t)(rnd() % 256) - 128;
        int kind = (int)(i % 4);
        float r = kind == 0 ? rf(23, -14, 14) : rf((int)(rnd() % 12), -10, 10);
        float t;
        if (kind == 2) t = (float)((int32_t)(rnd() % 4001) - 2000) * 0.5f;    /* ties */
        else if (kind == 3) t = (rnd() % 8 == 0) ? 0.0f : -(float)a * r;       /* cancellation */
        else t = rf(23, -20, 22);
        float want = fmaf((float)a, r, t), got = lk_fma_int(a, r, t);
        if (want != got && !(fabsf(want) < 1.2e-38f && got == 0.0f)) {
            if (bad < 5) printf("a=%d r=%a t=%a want %a got %a\n", a, r, t, want, got);
            bad++;
        }
    }
    printf("%ld mismatches in %ld\n", bad, n);
    return bad != 0;
}
