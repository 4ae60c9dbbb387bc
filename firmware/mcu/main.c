/*
 * main.c -- the Cortex-M test driver: runs an exported model (lanthorn export-c) on its
 * test vectors and prints every output integer over semihosting, then a summary line.
 *
 *   vector 0: -12 5 ... (every int8 of every output, in order)  # tap -> tap
 *   lanthorn-mcu: 16 vectors, 0 mismatches, 9 windows quantized here, 0 differ; arena ...
 *
 * The first MODEL_N_FLOAT_VECTORS vectors are float sensor windows: the device quantizes
 * them itself (model_quantize_input), and the int8 result must equal the laptop's.
 *
 * It checks itself against the numpy reference outputs exported beside the model, and
 * tests/test_mcu_qemu.py checks the printed integers against its own reference run.
 * Exit status (via semihosting): 0 when every output matched, 1 otherwise.
 */
#include <stdint.h>
#include <string.h>

#include "model.h"
#include "semihost.h"
#include "test_vectors.h"

extern uint32_t _ebss, _estack;

/* Paint the free stack with a pattern, so the deepest use can be measured afterwards. */
#define STACK_PAINT 0x5A5A5A5Au
static void paint_stack(void)
{
    uint32_t *p = &_ebss;
    /* leave this frame and the calls of the moment alone */
    uint32_t *top = (uint32_t *)__builtin_frame_address(0) - 64;
    while (p < top) *p++ = STACK_PAINT;
}

static uint32_t stack_used(void)
{
    const uint32_t *p = &_ebss;
    while (p < &_estack && *p == STACK_PAINT) p++;
    return (uint32_t)((const uint8_t *)&_estack - (const uint8_t *)p);
}

int main(void)
{
    paint_stack();
    int rc = model_init();
    if (rc != 0) {
        sh_puts("lanthorn-mcu: model_init failed: ");
        sh_put_int(rc);
        sh_puts("\n");
        return 1;
    }
    uint32_t mismatches = 0, quantize_mismatches = 0;
    for (int v = 0; v < MODEL_N_VECTORS; v++) {
        const uint8_t *in = model_test_inputs[v];
        if (v < MODEL_N_FLOAT_VECTORS) {
            /* a real sensor window: quantize it here, as the laptop runtime did */
            if (model_quantize_input(0, model_test_float_inputs[v], MODEL_INPUT0_BYTES) != 0 ||
                memcmp(model_input(0), in, MODEL_INPUT0_BYTES) != 0)
                quantize_mismatches++;
        } else {
            for (int i = 0; i < MODEL_N_INPUTS; i++) {
                memcpy(model_input(i), in, model_input_bytes[i]);
                in += model_input_bytes[i];
            }
        }
        rc = model_run();
        if (rc != 0) {
            sh_puts("lanthorn-mcu: model_run failed: ");
            sh_put_int(rc);
            sh_puts("\n");
            return 1;
        }
        sh_puts("vector ");
        sh_put_int(v);
        sh_puts(":");
        const int8_t *want = model_test_expected[v];
        for (int o = 0; o < MODEL_N_OUTPUTS; o++) {
            const int8_t *y = model_output(o);
            for (uint32_t k = 0; k < model_output_bytes[o]; k++) {
                sh_puts(" ");
                sh_put_int(y[k]);
                mismatches += y[k] != *want++;
            }
        }
        sh_puts("  # ");
        sh_puts(model_test_names[v]);
        if (MODEL_N_LABELS > 1) {
            sh_puts(" -> ");
            sh_puts(model_labels[model_argmax(0)]);
        }
        sh_puts("\n");
    }
    sh_puts("lanthorn-mcu: ");
    sh_put_int(MODEL_N_VECTORS);
    sh_puts(" vectors, ");
    sh_put_uint(mismatches);
    sh_puts(" mismatches, ");
    sh_put_int(MODEL_N_FLOAT_VECTORS);
    sh_puts(" windows quantized here, ");
    sh_put_uint(quantize_mismatches);
    sh_puts(" differ; arena ");
    sh_put_uint(MODEL_ARENA_BYTES);
    sh_puts(" bytes, stack used ");
    sh_put_uint(stack_used());
    sh_puts(" bytes\n");
    return mismatches == 0 && quantize_mismatches == 0 ? 0 : 1;
}
