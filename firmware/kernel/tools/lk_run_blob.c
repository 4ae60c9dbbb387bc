/*
 * lk_run_blob: run an LKB1 model blob on files of test vectors, for cross-checking the
 * kernel on other machines (e.g. aarch64 under qemu-user) against the numpy reference.
 *
 *   lk_run_blob MODEL.lkb INPUTS.bin OUT_PREFIX [variant|all]
 *   lk_run_blob -m LIST [variant|all]     (LIST: one "MODEL INPUTS OUT_PREFIX" per line;
 *                                          many models in one process, e.g. one qemu start)
 *
 * INPUTS.bin holds N input sets back to back (each set = every graph input's bytes in
 * order). For each variant run (default: the best this CPU supports; "all": every
 * supported one), writes OUT_PREFIX.<variant-name> with the N output sets back to back
 * and prints "<variant-name> <N> <packed-weight-bytes>" on stdout. Exit status: 0 ok, 1 usage/IO, 2 kernel error,
 * 3 gather index error. This host tool may allocate; the kernel itself never does.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lk.h"

static void *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    void *buf = aligned_alloc(16, ((size_t)n + 16) & ~(size_t)15);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) { free(buf); buf = NULL; }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static size_t tensor_bytes(const lk_tensor *t)
{
    size_t n = t->dtype == LK_INT32 ? 4 : 1;
    for (int d = 0; d < t->ndim; d++) n *= (size_t)t->shape[d];
    return n;
}

static int run_variant(lk_model *m, int v, const uint8_t *in, size_t in_len, const char *prefix)
{
    size_t psize = lk_packed_size(m, v), ssize = lk_scratch_size(m, v);
    void *packed = aligned_alloc(16, psize + 16);
    void *scratch = aligned_alloc(16, ssize + 16);
    uint8_t *arena = aligned_alloc(16, ((size_t)m->arena_size + 31) & ~(size_t)15);
    if (!packed || !scratch || !arena) return 1;
    int rc = lk_prepare(m, v, packed, psize);
    if (rc != LK_OK) { fprintf(stderr, "prepare %s: %d\n", lk_variant_name(v), rc); return 2; }
    size_t set_in = 0, set_out = 0;
    for (int i = 0; i < m->n_inputs; i++) set_in += tensor_bytes(&m->tensors[m->inputs[i]]);
    for (int i = 0; i < m->n_outputs; i++) set_out += tensor_bytes(&m->tensors[m->outputs[i]]);
    if (set_in == 0 || in_len % set_in) { fprintf(stderr, "inputs: bad size\n"); return 1; }
    size_t n = in_len / set_in;
    char path[4096];
    snprintf(path, sizeof path, "%s.%s", prefix, lk_variant_name(v));
    FILE *out = fopen(path, "wb");
    if (!out) return 1;
    for (size_t s = 0; s < n; s++) {
        const uint8_t *p = in + s * set_in;
        for (int i = 0; i < m->n_inputs; i++) {
            const lk_tensor *t = &m->tensors[m->inputs[i]];
            memcpy(arena + t->offset, p, tensor_bytes(t));
            p += tensor_bytes(t);
        }
        rc = lk_run(m, arena, scratch);
        if (rc != LK_OK) { fclose(out); return rc == LK_ERR_INDEX ? 3 : 2; }
        for (int i = 0; i < m->n_outputs; i++) {
            const lk_tensor *t = &m->tensors[m->outputs[i]];
            fwrite(arena + t->offset, 1, tensor_bytes(t), out);
        }
    }
    fclose(out);
    printf("%s %zu %zu\n", lk_variant_name(v), n, psize);
    free(packed); free(scratch); free(arena);
    return 0;
}

static int run_model(const char *model, const char *inputs, const char *prefix, const char *want);

int main(int argc, char **argv)
{
    if (argc >= 3 && strcmp(argv[1], "-m") == 0) {
        FILE *list = fopen(argv[2], "r");
        char a[4096], b[4096], c[4096];
        if (!list) { fprintf(stderr, "cannot read %s\n", argv[2]); return 1; }
        while (fscanf(list, "%4095s %4095s %4095s", a, b, c) == 3) {
            printf("model %s\n", a);
            int rc = run_model(a, b, c, argc > 3 ? argv[3] : "best");
            if (rc) { fclose(list); return rc; }
        }
        fclose(list);
        return 0;
    }
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.lkb INPUTS.bin OUT_PREFIX [variant|all]\n"
                        "       %s -m LIST [variant|all]\n", argv[0], argv[0]);
        return 1;
    }
    return run_model(argv[1], argv[2], argv[3], argc > 4 ? argv[4] : "best");
}

static int run_model(const char *model, const char *inputs, const char *prefix, const char *want)
{
    size_t blen, ilen;
    uint8_t *blob = read_file(model, &blen), *in = read_file(inputs, &ilen);
    if (!blob || !in) { fprintf(stderr, "cannot read inputs\n"); return 1; }
    int32_t nt, nl;
    if (lk_blob_counts(blob, blen, &nt, &nl) != LK_OK) { fprintf(stderr, "not a blob\n"); return 2; }
    lk_model m;
    lk_tensor *tensors = calloc((size_t)nt + 1, sizeof *tensors);
    lk_layer *layers = calloc((size_t)nl + 1, sizeof *layers);
    int rc = lk_model_init(&m, blob, blen, tensors, nt, layers, nl);
    if (rc != LK_OK) { fprintf(stderr, "model: %d\n", rc); return 2; }
    for (int v = 0; v < LK_N_VARIANTS; v++) {
        int pick = strcmp(want, "all") == 0 ? lk_variant_supported(v)
                 : strcmp(want, "best") == 0 ? v == lk_best_variant()
                 : strcmp(want, lk_variant_name(v)) == 0;
        if (!pick) continue;
        rc = run_variant(&m, v, in, ilen, prefix);
        if (rc) break;
    }
    free(blob); free(in); free(tensors); free(layers);
    return rc;
}
