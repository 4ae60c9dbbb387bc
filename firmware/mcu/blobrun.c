/*
 * blobrun.c -- firmware/kernel/tools/lk_run_blob for a Cortex-M core: runs any LKB1 blob on
 * a file of input sets and writes the output sets, reading and writing host files through
 * semihosting, so the shared kernel test vectors (every operator, tests/kernel_graphs.py)
 * run on the microcontroller builds exactly as under qemu-aarch64.
 *
 *   qemu-system-arm -M mps2-an386 ... -semihosting-config enable=on,target=native,\
 *       arg=blobrun,arg=MODEL.lkb,arg=INPUTS.bin,arg=OUTPUTS.bin -kernel lanthorn-blobrun.elf
 *
 * or, to run many blobs in one boot, arg=@LIST (a file of "MODEL INPUTS OUTPUTS" lines).
 * Prints "c-scalar <sets>" per blob and exits 0, or prints the error and exits 1. Buffers are static
 * (sized below; the board's RAM is the limit), the kernel still allocates nothing.
 */
#include <stdint.h>
#include <string.h>

#include "lk.h"
#include "semihost.h"

#define MAX_BLOB (192u * 1024u)
#define MAX_IN (128u * 1024u)
#define MAX_OUT (64u * 1024u)
#define MAX_ARENA (256u * 1024u)
#define MAX_TENSORS 64
#define MAX_LAYERS 64

static uint8_t blob[MAX_BLOB] __attribute__((aligned(16)));
static uint8_t inputs[MAX_IN] __attribute__((aligned(16)));
static uint8_t outputs[MAX_OUT];
static uint8_t arena[MAX_ARENA] __attribute__((aligned(16)));
static lk_tensor tensors[MAX_TENSORS];
static lk_layer layers[MAX_LAYERS];
static char cmdline[512];
#define MAX_LIST 64
static char list[MAX_LIST * 3 * 200];

static int fail(const char *what, int32_t code)
{
    sh_puts("blobrun: ");
    sh_puts(what);
    sh_puts(" ");
    sh_put_int(code);
    sh_puts("\n");
    return 1;
}

static int32_t load(const char *path, uint8_t *buf, uint32_t cap)
{
    int32_t h = sh_open(path, 0);
    if (h < 0) return -1;
    int32_t n = sh_flen(h);
    if (n < 0 || (uint32_t)n > cap || sh_read(h, buf, (uint32_t)n) != n) n = -2;
    sh_close(h);
    return n;
}

static uint32_t tensor_bytes(const lk_tensor *t)
{
    uint32_t n = t->dtype == LK_INT32 ? 4u : 1u;
    for (int d = 0; d < t->ndim; d++) n *= (uint32_t)t->shape[d];
    return n;
}

/* Run one blob on one input file; 0 on success (prints "c-scalar <sets>"), 1 on failure. */
static int run_one(const char *model, const char *in_path, const char *out_path)
{
    int32_t blen = load(model, blob, MAX_BLOB), ilen = load(in_path, inputs, MAX_IN);
    if (blen < 0 || ilen < 0) return fail("cannot read model or inputs (or too big):", blen < 0 ? blen : ilen);
    lk_model m;
    int rc = lk_model_init(&m, blob, (size_t)blen, tensors, MAX_TENSORS, layers, MAX_LAYERS);
    if (rc == LK_OK) rc = lk_prepare(&m, LK_VARIANT_SCALAR, NULL, 0);
    if (rc != LK_OK) return fail("model:", rc);
    if (m.arena_size > MAX_ARENA) return fail("arena too big:", (int32_t)m.arena_size);
    uint32_t set_in = 0, set_out = 0;
    for (int i = 0; i < m.n_inputs; i++) set_in += tensor_bytes(&m.tensors[m.inputs[i]]);
    for (int i = 0; i < m.n_outputs; i++) set_out += tensor_bytes(&m.tensors[m.outputs[i]]);
    if (set_in == 0 || (uint32_t)ilen % set_in) return fail("inputs: bad size", ilen);
    uint32_t n = (uint32_t)ilen / set_in;
    if (n * set_out > MAX_OUT) return fail("outputs too big:", (int32_t)(n * set_out));
    uint8_t *out = outputs;
    for (uint32_t s = 0; s < n; s++) {
        const uint8_t *p = inputs + s * set_in;
        for (int i = 0; i < m.n_inputs; i++) {
            const lk_tensor *t = &m.tensors[m.inputs[i]];
            memcpy(arena + t->offset, p, tensor_bytes(t));
            p += tensor_bytes(t);
        }
        rc = lk_run(&m, arena, NULL);
        if (rc != LK_OK) return fail("run:", rc);
        for (int i = 0; i < m.n_outputs; i++) {
            const lk_tensor *t = &m.tensors[m.outputs[i]];
            memcpy(out, arena + t->offset, tensor_bytes(t));
            out += tensor_bytes(t);
        }
    }
    int32_t h = sh_open(out_path, 1);
    if (h < 0 || sh_write(h, outputs, (uint32_t)(out - outputs)) != 0) return fail("cannot write outputs", h);
    sh_close(h);
    sh_puts("c-scalar ");
    sh_put_uint(n);
    sh_puts("\n");
    return 0;
}

/* Split s in place at spaces, tabs and newlines into at most max words. */
static int split(char *s, char **words, int max)
{
    int n = 0;
    while (*s && n < max) {
        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') *s++ = 0;
        if (!*s) break;
        words[n++] = s;
        while (*s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') s++;
    }
    return n;
}

int main(void)
{
    char *argv[5] = {0};
    if (sh_cmdline(cmdline, sizeof cmdline) < 0) return fail("no command line", 0);
    int argc = split(cmdline, argv, 5);
    if (argc == 4) return run_one(argv[1], argv[2], argv[3]);
    if (argc == 2 && argv[1][0] == '@') {
        /* @LIST: one "MODEL.lkb INPUTS.bin OUTPUTS.bin" per line, all in one boot */
        int32_t len = load(argv[1] + 1, (uint8_t *)list, sizeof list - 1);
        if (len < 0) return fail("cannot read list", len);
        list[len] = 0;
        char *words[3 * MAX_LIST];
        int n = split(list, words, 3 * MAX_LIST);
        if (n % 3) return fail("list: not MODEL INPUTS OUTPUTS triples; words", n);
        for (int i = 0; i < n; i += 3)
            if (run_one(words[i], words[i + 1], words[i + 2]) != 0) return 1;
        return 0;
    }
    return fail("usage: blobrun MODEL.lkb INPUTS.bin OUTPUTS.bin | blobrun @LIST; args", argc);
}
