/*
 * libFuzzer target for the companion's receive path (firmware/src/protocol.c), built with
 * clang -fsanitize=fuzzer,address,undefined by `make -C firmware fuzz`; run it with
 * firmware/fuzz/run.sh SECONDS.
 *
 * The input is the byte stream the companion's UART would receive. Every frame the
 * stream receiver accepts goes through what main.c does with it: the payload check, then
 * for LEDS the copy into the 24-pixel buffer (AddressSanitizer catches any chunk the check
 * let through that would overrun it), brightness and the power cap (whose result must be
 * within the cap). Beyond memory safety the target checks properties, and aborts (a
 * "crash" libFuzzer saves) when one fails:
 *   - an accepted frame, rebuilt with lp_frame_build, parses back to the same frame;
 *   - the whole input parsed as one encoded frame agrees with the stream receiver;
 *   - the power cap holds for every LEDS frame.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

#define N_LEDS 24

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "property failed: %s\n", what);
        abort();
    }
}

static void apply_like_main(const lp_frame *f, uint8_t brightness, uint16_t cap)
{
    static uint8_t pixels[N_LEDS * 3];
    if (lp_payload_check(f, N_LEDS) != LP_OK || f->type != LP_LEDS)
        return;
    uint16_t start = lp_get_u16(f->payload + 1);
    /* exactly main.c's copy; a heap copy of the exact size so ASan sees any overrun */
    uint8_t *buf = malloc(sizeof pixels);
    memcpy(buf, pixels, sizeof pixels);
    memcpy(buf + 3 * start, f->payload + 3, (size_t)(f->len - 3));
    if (!(f->payload[0] & LP_LEDS_PRELIMITED))
        lp_apply_brightness(buf, sizeof pixels, brightness);
    lp_limit_power(buf, N_LEDS, cap);
    if (cap) {
        uint32_t sum = 0;
        for (size_t i = 0; i < sizeof pixels; i++)
            sum += buf[i];
        /* drive = sum * 20 / 255 mA within cap - N_LEDS (integer form, no rounding) */
        uint32_t budget = cap > N_LEDS ? cap - N_LEDS : 0;
        check(sum * 20u <= budget * 255u, "power cap");
    }
    memcpy(pixels, buf, sizeof pixels);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lp_rx rx;
    lp_frame f, g;
    uint8_t wire[LP_MAX_WIRE], scratch[LP_MAX_FRAME];
    uint8_t brightness = size ? data[0] : 255;
    uint16_t cap = size > 1 ? (uint16_t)(data[1] * 8) : 0;

    lp_rx_init(&rx);
    int frames = 0, last = 0;
    for (size_t i = 0; i < size; i++) {
        int r = lp_rx_feed(&rx, data[i], &f);
        check(r == 0 || r == 1 || (r < 0 && r >= -LP_E_NO_ROOM), "rx_feed result range");
        if (r != 1)
            continue;
        frames++;
        last = (int)i;
        check(f.len <= LP_MAX_PAYLOAD, "payload length");
        apply_like_main(&f, brightness, cap);
        int n = lp_frame_build(f.type, f.seq, f.payload, f.len, wire, sizeof wire);
        check(n > 1 && wire[n - 1] == 0, "rebuild");
        check(lp_frame_parse(wire, (size_t)n - 1, scratch, sizeof scratch, &g) == LP_OK, "reparse");
        check(g.type == f.type && g.seq == f.seq && g.len == f.len &&
                  memcmp(g.payload, f.payload, f.len) == 0, "round trip");
    }
    (void)last;

    /* The whole input as one encoded frame: the stream receiver must agree when the input
     * has no delimiter of its own. */
    int r = lp_frame_parse(data, size, scratch, sizeof scratch, &g);
    if (size > 0 && memchr(data, 0, size) == NULL) {
        lp_rx_init(&rx);
        int s = 0;
        for (size_t i = 0; i < size; i++)
            s = lp_rx_feed(&rx, data[i], &f);
        s = lp_rx_feed(&rx, 0, &f);
        check((r == LP_OK) == (s == 1), "parse agrees with the stream receiver");
        if (r != LP_OK)
            check(s == r, "same error from parse and stream receiver");
    }

    /* COBS decode into every small output size: never writes past cap (ASan). */
    for (size_t cap2 = 0; cap2 < 8 && cap2 <= size; cap2++) {
        uint8_t *out = malloc(cap2 ? cap2 : 1);
        int m = lp_cobs_decode(data, size, out, cap2);
        check(m <= (int)cap2, "cobs decode bound");
        free(out);
    }
    return 0;
}
