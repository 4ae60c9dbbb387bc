/*
 * deploy.c -- what an artwork's firmware needs of lanthorn, and nothing else: quantize one
 * window of float sensor values, run the model, take the recognised class. Built as
 * lanthorn-model.elf only to measure the flash and RAM the model and kernel really cost
 * (the test driver's figures include its test vectors). Not run by the tests.
 */
#include <stdint.h>

#include "model.h"

/* A window as the sensor loop would fill it (volatile: the compiler may not fold it). */
static volatile float window[MODEL_INPUT0_BYTES];

int main(void)
{
    float x[MODEL_INPUT0_BYTES];
    if (model_init() != 0) return 1;
    for (uint32_t i = 0; i < MODEL_INPUT0_BYTES; i++) x[i] = window[i];
    if (model_quantize_input(0, x, MODEL_INPUT0_BYTES) != 0 || model_run() != 0) return 1;
    return model_argmax(0) >= 0 ? 0 : 1;
}
