/*
 * lanthorn companion protocol, the C side (spec: firmware/PROTOCOL.md).
 *
 * Every function is bounded by its arguments: no allocation, no recursion, no globals,
 * so a corrupted byte stream can cost a dropped frame but never memory or time. The
 * decoder is fuzzed by firmware/fuzz/run.sh.
 */
#include "protocol.h"

uint16_t lp_crc16_update(uint16_t crc, uint8_t byte)
{
    crc ^= (uint16_t)byte << 8;
    for (uint8_t i = 0; i < 8; i++)
        crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    return crc;
}

uint16_t lp_crc16(const uint8_t *data, size_t n)
{
    uint16_t crc = 0xFFFF;
    for (size_t i = 0; i < n; i++)
        crc = lp_crc16_update(crc, data[i]);
    return crc;
}

size_t lp_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t code_at = 0, o = 1;
    uint8_t code = 1;
    if (cap == 0)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = o++;
            code = 1;
            if (code_at >= cap)
                return 0;
        } else {
            if (o >= cap)
                return 0;
            out[o++] = in[i];
            code++;
            /* A full block (254 data bytes) ends without an implied zero; a new block
             * starts only if more input follows, as in the canonical COBS encoding. */
            if (code == 0xFF && i + 1 < n) {
                out[code_at] = code;
                code_at = o++;
                code = 1;
                if (code_at >= cap)
                    return 0;
            }
        }
    }
    out[code_at] = code;
    return o;
}

int lp_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap)
{
    size_t i = 0, o = 0;
    while (i < n) {
        uint8_t code = in[i++];
        if (code == 0)
            return -LP_E_FRAMING;
        for (uint8_t k = 1; k < code; k++) {
            if (i >= n || in[i] == 0)
                return -LP_E_FRAMING;
            if (o >= cap)
                return -LP_E_NO_ROOM;
            out[o++] = in[i++];
        }
        /* A group shorter than 254 data bytes stands for a zero, except at the very end. */
        if (code != 0xFF && i < n) {
            if (o >= cap)
                return -LP_E_NO_ROOM;
            out[o++] = 0;
        }
    }
    return (int)o;
}

int lp_frame_build(uint8_t type, uint8_t seq, const uint8_t *payload, size_t len,
                   uint8_t *out, size_t cap)
{
    uint8_t raw[LP_MAX_FRAME];
    if (len > LP_MAX_PAYLOAD)
        return -LP_E_TOO_LONG;
    raw[0] = type;
    raw[1] = seq;
    for (size_t i = 0; i < len; i++)
        raw[2 + i] = payload[i];
    uint16_t crc = lp_crc16(raw, len + 2);
    raw[len + 2] = (uint8_t)(crc >> 8);
    raw[len + 3] = (uint8_t)crc;
    if (cap < 1)
        return -LP_E_NO_ROOM;
    size_t n = lp_cobs_encode(raw, len + LP_OVERHEAD, out, cap - 1);
    if (n == 0)
        return -LP_E_NO_ROOM;
    out[n] = 0x00;
    return (int)(n + 1);
}

int lp_frame_parse(const uint8_t *enc, size_t n, uint8_t *scratch, size_t cap, lp_frame *f)
{
    if (n > LP_MAX_ENCODED)
        return -LP_E_TOO_LONG;
    if (cap > LP_MAX_FRAME)
        cap = LP_MAX_FRAME;
    int m = lp_cobs_decode(enc, n, scratch, cap);
    if (m == -LP_E_NO_ROOM)
        return -LP_E_TOO_LONG;
    if (m < 0)
        return m;
    if (m < LP_OVERHEAD)
        return -LP_E_SHORT;
    uint16_t want = (uint16_t)((scratch[m - 2] << 8) | scratch[m - 1]);
    if (lp_crc16(scratch, (size_t)m - 2) != want)
        return -LP_E_CRC;
    f->type = scratch[0];
    f->seq = scratch[1];
    f->len = (uint8_t)(m - LP_OVERHEAD);
    f->payload = scratch + 2;
    return LP_OK;
}

int lp_payload_check(const lp_frame *f, uint16_t n_leds)
{
    switch (f->type) {
    case LP_HELLO:
        return f->len == 1 ? LP_OK : -LP_E_BAD_PAYLOAD;
    case LP_PING:
        return f->len <= LP_MAX_PING ? LP_OK : -LP_E_BAD_PAYLOAD;
    case LP_LEDS: {
        if (f->len < 3 || (f->len - 3) % 3 != 0)
            return -LP_E_BAD_PAYLOAD;
        uint16_t start = lp_get_u16(f->payload + 1);
        uint16_t count = (uint16_t)((f->len - 3) / 3);
        if ((uint32_t)start + count > n_leds)
            return -LP_E_BAD_PAYLOAD;
        return f->payload[0] & ~(LP_LEDS_SHOW | LP_LEDS_PRELIMITED) ? -LP_E_BAD_PAYLOAD : LP_OK;
    }
    case LP_BRIGHTNESS:
        return f->len == 1 ? LP_OK : -LP_E_BAD_PAYLOAD;
    case LP_POWER_CAP:
    case LP_STREAM:
        return f->len == 2 ? LP_OK : -LP_E_BAD_PAYLOAD;
    case LP_STATUS_REQ:
        return f->len == 0 ? LP_OK : -LP_E_BAD_PAYLOAD;
    default:
        return -LP_E_UNKNOWN_TYPE;
    }
}

void lp_rx_init(lp_rx *rx)
{
    rx->n = 0;
    rx->overflow = 0;
}

size_t lp_rx_size(void) { return sizeof(lp_rx); }

int lp_rx_feed(lp_rx *rx, uint8_t byte, lp_frame *f)
{
    if (byte != 0x00) {
        if (rx->n < LP_MAX_ENCODED)
            rx->enc[rx->n++] = byte;
        else
            rx->overflow = 1;
        return 0;
    }
    /* Delimiter: whatever was collected is one frame (or garbage to drop). */
    uint16_t n = rx->n;
    uint8_t overflow = rx->overflow;
    rx->n = 0;
    rx->overflow = 0;
    if (overflow)
        return -LP_E_TOO_LONG;
    if (n == 0)
        return 0; /* back-to-back delimiters are legal padding (e.g. a resync burst) */
    int r = lp_frame_parse(rx->enc, n, rx->dec, sizeof rx->dec, f);
    return r == LP_OK ? 1 : r;
}

void lp_seq_reset(lp_seq *s)
{
    s->last = 0;
    s->synced = 0;
}

int lp_seq_check(lp_seq *s, uint8_t seq)
{
    if (!s->synced) {
        s->synced = 1;
        s->last = seq;
        return 0;
    }
    if (seq == s->last)
        return LP_SEQ_DUPLICATE;
    uint8_t missing = (uint8_t)(seq - s->last - 1);
    s->last = seq;
    return missing;
}

size_t lp_sensor_payload(uint8_t *out, uint32_t t_ms, uint16_t touched, uint8_t status,
                         uint8_t n, const uint16_t *raw, const uint16_t *baseline)
{
    if (n > LP_MAX_PADS)
        return 0;
    lp_put_u32(out, t_ms);
    lp_put_u16(out + 4, touched);
    out[6] = n;
    out[7] = status;
    uint8_t *p = out + LP_SENSOR_HEADER_LEN;
    for (uint8_t i = 0; i < n; i++, p += 2)
        lp_put_u16(p, raw[i]);
    for (uint8_t i = 0; i < n; i++, p += 2)
        lp_put_u16(p, baseline[i]);
    return (size_t)(p - out);
}

int lp_limit_power(uint8_t *rgb, uint16_t n, uint16_t cap_ma)
{
    if (cap_ma == 0)
        return 0;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < (uint32_t)n * 3; i++)
        sum += rgb[i];
    /* drive_ma = sum * 20 / 255 must stay within cap_ma - n (1 mA per idle pixel). */
    uint32_t budget = cap_ma > n ? (uint32_t)(cap_ma - n) : 0;
    uint32_t den = sum * 20u, num = budget * 255u;
    if (den <= num)
        return 0;
    for (uint32_t i = 0; i < (uint32_t)n * 3; i++)
        rgb[i] = (uint8_t)((uint32_t)rgb[i] * num / den); /* floor, like limit_frame */
    return 1;
}

void lp_apply_brightness(uint8_t *rgb, uint16_t nbytes, uint8_t brightness)
{
    if (brightness == 255)
        return;
    for (uint16_t i = 0; i < nbytes; i++)
        rgb[i] = (uint8_t)((uint16_t)rgb[i] * brightness / 255u);
}
