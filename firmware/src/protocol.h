/*
 * lanthorn companion protocol: framing, CRC and payload layouts (see firmware/PROTOCOL.md).
 *
 * Portable C99, no malloc, no globals: the same file runs on the ATmega328P, the RP2040,
 * in the host-compiled test library (driven from pytest through ctypes) and in the fuzzer.
 * The Python twin is hardware/companion/wire.py; tests/test_companion_wire.py
 * checks that every constant below has the same value there.
 */
#ifndef LANTHORN_PROTOCOL_H
#define LANTHORN_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LP_VERSION 1

/* Sizes. A decoded frame is type, seq, payload, CRC (big-endian). */
#define LP_MAX_PAYLOAD 200
#define LP_OVERHEAD 4
#define LP_MAX_FRAME (LP_MAX_PAYLOAD + LP_OVERHEAD)
/* COBS adds one byte per started 254-byte block, plus the 0x00 delimiter on the wire. */
#define LP_MAX_ENCODED (LP_MAX_FRAME + LP_MAX_FRAME / 254 + 1)
#define LP_MAX_WIRE (LP_MAX_ENCODED + 1)

/* Frame types: host (Pi) -> companion in 0x01..0x7F, companion -> host in 0x80..0xFF. */
#define LP_HELLO 0x01
#define LP_PING 0x02
#define LP_LEDS 0x03
#define LP_BRIGHTNESS 0x04
#define LP_POWER_CAP 0x05
#define LP_STREAM 0x06
#define LP_STATUS_REQ 0x07
#define LP_INFO 0x81
#define LP_PONG 0x82
#define LP_SENSOR 0x83
#define LP_ERROR 0x84
#define LP_ACK 0x85
#define LP_NAK 0x86
#define LP_STATUS 0x87

/* LEDS flags. */
#define LP_LEDS_SHOW 0x01       /* latch the buffer onto the ring after this chunk (ACKed) */
#define LP_LEDS_PRELIMITED 0x02 /* host already applied brightness: companion applies only the cap */

/* Payload sizes of the fixed-layout frames. */
#define LP_INFO_LEN 14
#define LP_STATUS_LEN 16
#define LP_SENSOR_HEADER_LEN 8
#define LP_MAX_PING 32
#define LP_MAX_ERROR_TEXT 48
#define LP_MAX_PADS 12

/* INFO board ids and flags. */
#define LP_BOARD_ATMEGA328P 1
#define LP_BOARD_RP2040 2
#define LP_INFO_TOUCH_OK 0x01

/* SENSOR status bits. */
#define LP_SENSOR_FAIL 0x01      /* the touch chip did not answer: values are stale */
#define LP_SENSOR_OVERCURRENT 0x02 /* MPR121 OVCF: an electrode is shorted */

/* STATUS modes. */
#define LP_MODE_LIVE 0
#define LP_MODE_IDLE 1

/* Error codes: return values of the decoder (negated) and codes in ERROR/NAK frames. */
#define LP_OK 0
#define LP_E_CRC 1
#define LP_E_FRAMING 2
#define LP_E_SHORT 3
#define LP_E_TOO_LONG 4
#define LP_E_UNKNOWN_TYPE 5
#define LP_E_BAD_PAYLOAD 6
#define LP_E_SEQ_GAP 7
#define LP_E_SENSOR 8
#define LP_E_RX_OVERFLOW 9
#define LP_E_VERSION 10
#define LP_E_NO_ROOM 11 /* an output buffer is too small (programming error, never on the wire) */

/* Sequence check results (lp_seq_check returns the number of missing frames, >= 0, or this). */
#define LP_SEQ_DUPLICATE (-1)

typedef struct {
    uint8_t type;
    uint8_t seq;
    uint8_t len;            /* payload length */
    const uint8_t *payload; /* points into the caller's buffer */
} lp_frame;

/* CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor. */
uint16_t lp_crc16(const uint8_t *data, size_t n);
uint16_t lp_crc16_update(uint16_t crc, uint8_t byte);

/* COBS. encode: returns encoded length (no delimiter) or 0 if it does not fit in cap.
 * decode: returns decoded length, or -LP_E_FRAMING / -LP_E_NO_ROOM. */
size_t lp_cobs_encode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);
int lp_cobs_decode(const uint8_t *in, size_t n, uint8_t *out, size_t cap);

/* Build a complete wire frame (COBS + trailing 0x00). Returns bytes written, or
 * -LP_E_TOO_LONG (payload over LP_MAX_PAYLOAD) / -LP_E_NO_ROOM. */
int lp_frame_build(uint8_t type, uint8_t seq, const uint8_t *payload, size_t len,
                   uint8_t *out, size_t cap);

/* Parse one encoded frame (without the 0x00 delimiter). scratch receives the decoded
 * bytes (LP_MAX_FRAME is always enough); f->payload points into it. Returns LP_OK or
 * -LP_E_TOO_LONG, -LP_E_FRAMING, -LP_E_SHORT, -LP_E_CRC. */
int lp_frame_parse(const uint8_t *enc, size_t n, uint8_t *scratch, size_t cap, lp_frame *f);

/* Check a host->companion frame's payload against its type's layout:
 * LP_OK, -LP_E_UNKNOWN_TYPE or -LP_E_BAD_PAYLOAD. n_leds bounds LEDS chunks. */
int lp_payload_check(const lp_frame *f, uint16_t n_leds);

/* Byte-stream receiver: feed bytes as they arrive; it returns 1 when *f holds a frame,
 * 0 when it needs more bytes, or a negative error for a frame that was dropped (the
 * receiver has already resynchronised on the next 0x00). */
typedef struct {
    uint8_t enc[LP_MAX_ENCODED];
    uint8_t dec[LP_MAX_FRAME];
    uint16_t n;
    uint8_t overflow;
} lp_rx;

void lp_rx_init(lp_rx *rx);
int lp_rx_feed(lp_rx *rx, uint8_t byte, lp_frame *f);
size_t lp_rx_size(void); /* sizeof(lp_rx), for the ctypes tests */

/* Sequence tracking for one direction. */
typedef struct {
    uint8_t last;
    uint8_t synced;
} lp_seq;

void lp_seq_reset(lp_seq *s);
int lp_seq_check(lp_seq *s, uint8_t seq);

/* Little-endian field helpers (payload fields are little-endian; only the CRC is big-endian). */
static inline void lp_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static inline void lp_put_u32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24);
}
static inline uint16_t lp_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | ((uint16_t)p[1] << 8)); }

/* SENSOR payload: t_ms u32, touched u16, n_pads u8, status u8, raw u16[n], baseline u16[n].
 * Returns the payload length, or 0 if n > LP_MAX_PADS. */
size_t lp_sensor_payload(uint8_t *out, uint32_t t_ms, uint16_t touched, uint8_t status,
                         uint8_t n, const uint16_t *raw, const uint16_t *baseline);

/* Estimated WS2812 current and the companion's copy of the power cap; the same model as
 * lanthorn.hardware.interfaces.limit_frame (20 mA per channel at full, 1 mA per pixel idle).
 * Scales rgb (n pixels, 3 bytes each) in place so the estimate stays within cap_ma
 * (0 = no cap). Returns 1 if it had to scale. */
int lp_limit_power(uint8_t *rgb, uint16_t n, uint16_t cap_ma);
/* Scales every byte by brightness/255 (255 leaves the frame as is). */
void lp_apply_brightness(uint8_t *rgb, uint16_t nbytes, uint8_t brightness);

#ifdef __cplusplus
}
#endif
#endif
