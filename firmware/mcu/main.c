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

/* SysTick on the core clock, counting down from 2**24 - 1. Under qemu with `-icount`,
 * virtual time advances by a fixed step per executed instruction, so ticks measure
 * instructions; a calibration loop of known length converts them without needing to know
 * the board's clock or the icount step. (On a real board the ticks are core cycles.) */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CAL_ITERATIONS 200000u /* x 2 instructions (subs, bne) */
static void systick_start(void)
{
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5u; /* enable, core clock, no interrupt */
}
static uint32_t systick_now(void) { return SYST_CVR; }

static uint32_t calibration_ticks(void)
{
    uint32_t n = CAL_ITERATIONS, t0 = systick_now();
#if defined(__thumb2__)
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+l"(n) : : "cc");
#else /* GCC assembles Thumb-1 inline asm in divided syntax, where sub sets the flags */
    __asm__ volatile("1: sub %0, #1\n\tbne 1b" : "+l"(n) : : "cc");
#endif
    return (t0 - systick_now()) & 0xFFFFFFu;
}

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
    uint32_t mismatches = 0, quantize_mismatches = 0, ticks = 0;
    systick_start();
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
        uint32_t t0 = systick_now();
        rc = model_run();
        uint32_t t1 = systick_now();
        ticks += (t0 - t1) & 0xFFFFFFu; /* counts down; one inference is far below 2**24 */
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
    uint32_t cal = calibration_ticks();
    sh_puts("lanthorn-mcu: ");
    sh_put_uint(ticks / MODEL_N_VECTORS);
    sh_puts(" SysTick ticks per inference; ");
    if (cal > 0) {
        sh_put_uint((uint32_t)((uint64_t)ticks * (2u * CAL_ITERATIONS) / cal / MODEL_N_VECTORS));
        sh_puts(" instructions per inference (valid under qemu -icount)\n");
    } else {
        sh_puts("no instruction count (SysTick not running)\n");
    }
    return mismatches == 0 && quantize_mismatches == 0 ? 0 : 1;
}
