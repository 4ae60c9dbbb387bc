/*
 * lanthorn companion: scans the MPR121 pads at a steady rate, drives the WS2812 ring and
 * talks to the Pi with the protocol of firmware/PROTOCOL.md.
 *
 * The piece must never go dark or freeze because the Pi is rebooting, busy or unplugged:
 * when no valid host frame has arrived for IDLE_TIMEOUT_MS the companion plays its own
 * dim breathing animation, and the first valid frame brings the Pi's picture back. The
 * brightness and the power cap are applied here too, so the ring stays within its supply's
 * budget whatever the host sends.
 *
 * Board-independent: everything board-specific is behind hal.h. On the AVR without the
 * Arduino core, main() below is the entry point; with an Arduino core (the Pico build),
 * hal_pico.cpp calls companion_init() from setup() and companion_poll() from loop().
 */
#include <stdint.h>
#include <string.h>

#include "hal.h"
#include "mpr121.h"
#include "protocol.h"

#define FW_MAJOR 0
#define FW_MINOR 1
#define FW_PATCH 0

#ifndef N_LEDS
#define N_LEDS 24
#endif
#ifndef N_PADS
#define N_PADS 12
#endif
#ifndef PAD_RATE_HZ
#define PAD_RATE_HZ 100
#endif
#ifndef IDLE_TIMEOUT_MS
#define IDLE_TIMEOUT_MS 1500
#endif
#ifndef DEFAULT_POWER_CAP_MA
#define DEFAULT_POWER_CAP_MA 1200 /* safe for a 24-pixel ring on a 2 A supply; POWER_CAP overrides */
#endif
#ifndef DEFAULT_BRIGHTNESS
#define DEFAULT_BRIGHTNESS 255
#endif
#ifndef TOUCH_THRESHOLD
#define TOUCH_THRESHOLD 12
#endif
#ifndef RELEASE_THRESHOLD
#define RELEASE_THRESHOLD 6
#endif
#ifndef BOARD_ID
#if defined(__AVR__)
#define BOARD_ID LP_BOARD_ATMEGA328P
#else
#define BOARD_ID LP_BOARD_RP2040
#endif
#endif
#define IDLE_FRAME_MS 33          /* ~30 fps idle animation */
#define SENSOR_RETRY_MS 1000      /* re-initialise a touch chip that stopped answering */
#define SCAN_PERIOD_MS (1000 / PAD_RATE_HZ)

static uint8_t pixels[N_LEDS * 3]; /* RGB as received from the host, ring order */
static uint8_t wire[N_LEDS * 3];   /* what goes out: limited, in the LEDs' colour order */
static uint8_t prelimited;
static uint8_t brightness = DEFAULT_BRIGHTNESS;
static uint16_t power_cap_ma = DEFAULT_POWER_CAP_MA;

static lp_rx rx;
static lp_seq rx_seq;
static uint8_t tx_seq;
static uint8_t mode = LP_MODE_IDLE; /* idle until the host says hello */
static uint32_t last_host_ms, last_idle_ms, last_show_ms;

static uint8_t touch_ok;
static uint32_t next_scan_ms, last_sensor_retry_ms;
static uint8_t stream_every, stream_count; /* send every Nth scan; 0 = not streaming */
static uint8_t sensor_err_reported;
static mpr121_reading reading;

static uint16_t rx_frames, rx_errors, seq_gaps, sensor_errors;

static void send_frame(uint8_t type, const uint8_t *payload, uint8_t len)
{
    uint8_t out[LP_MAX_WIRE];
    int n = lp_frame_build(type, tx_seq++, payload, len, out, sizeof out);
    if (n > 0)
        hal_uart_write(out, (uint16_t)n);
}

static void send_error(uint8_t code, uint8_t detail, const char *text)
{
    uint8_t p[2 + LP_MAX_ERROR_TEXT];
    uint8_t n = 0;
    p[0] = code;
    p[1] = detail;
    while (text && n < LP_MAX_ERROR_TEXT && hal_text_byte(text, n)) { /* text: HAL_TEXT() */
        p[2 + n] = (uint8_t)hal_text_byte(text, n);
        n++;
    }
    send_frame(LP_ERROR, p, (uint8_t)(2 + n));
}

static void send_ack(const lp_frame *f)
{
    uint8_t p[2] = {f->type, f->seq};
    send_frame(LP_ACK, p, 2);
}

static void send_nak(const lp_frame *f, uint8_t code)
{
    uint8_t p[3] = {f->type, f->seq, code};
    send_frame(LP_NAK, p, 3);
}

static void send_info(void)
{
    uint8_t p[LP_INFO_LEN];
    p[0] = LP_VERSION;
    p[1] = FW_MAJOR;
    p[2] = FW_MINOR;
    p[3] = FW_PATCH;
    p[4] = BOARD_ID;
    p[5] = N_PADS;
    lp_put_u16(p + 6, N_LEDS);
    lp_put_u16(p + 8, PAD_RATE_HZ);
    lp_put_u16(p + 10, IDLE_TIMEOUT_MS);
    p[12] = LP_MAX_PAYLOAD;
    p[13] = touch_ok ? LP_INFO_TOUCH_OK : 0;
    send_frame(LP_INFO, p, sizeof p);
}

static void send_status(void)
{
    uint8_t p[LP_STATUS_LEN];
    lp_put_u32(p, hal_millis());
    p[4] = mode;
    p[5] = brightness;
    lp_put_u16(p + 6, power_cap_ma);
    lp_put_u16(p + 8, rx_frames);
    lp_put_u16(p + 10, rx_errors);
    lp_put_u16(p + 12, seq_gaps);
    lp_put_u16(p + 14, sensor_errors);
    send_frame(LP_STATUS, p, sizeof p);
}

/* Limit a copy of the RGB pixels (or wire itself) and send it in the LEDs' colour order. */
static void show(const uint8_t *rgb, uint8_t apply_brightness)
{
    if (rgb != wire)
        memcpy(wire, rgb, sizeof wire);
    if (apply_brightness)
        lp_apply_brightness(wire, sizeof wire, brightness);
    lp_limit_power(wire, N_LEDS, power_cap_ma);
#ifndef LED_ORDER_RGB
    for (uint16_t i = 0; i < sizeof wire; i += 3) { /* RGB -> GRB */
        uint8_t r = wire[i];
        wire[i] = wire[i + 1];
        wire[i + 1] = r;
    }
#endif
    /* The WS2812 latches after >= 280 us low: never start a frame within 1 ms of the last. */
    while (hal_millis() - last_show_ms < 2) {
    }
    hal_ws2812_show(wire, sizeof wire);
    last_show_ms = hal_millis();
}

/* The companion's own animation: a warm glow breathing over 4 s with a brighter spot
 * drifting round the ring, dim enough for a dark room, so the piece looks asleep, not dead. */
static void render_idle(uint32_t now)
{
    uint8_t *frame = wire; /* drawn in place: saves a frame of RAM */
    uint16_t phase = (uint16_t)(now % 4000u);
    uint16_t tri = phase < 2000 ? phase : (uint16_t)(4000 - phase);
    uint8_t level = (uint8_t)(6 + (uint32_t)tri * 40u / 2000u);
    uint16_t spot = (uint16_t)((now / 250u) % N_LEDS);
    for (uint16_t i = 0; i < N_LEDS; i++) {
        uint16_t l = i == spot ? (uint16_t)level * 2 : level;
        frame[3 * i] = (uint8_t)l;                     /* R */
        frame[3 * i + 1] = (uint8_t)(l * 120u / 255u); /* G */
        frame[3 * i + 2] = (uint8_t)(l * 30u / 255u);  /* B */
    }
    show(frame, 1);
}

static uint8_t acknowledged(uint8_t type, const lp_frame *f)
{
    return type == LP_BRIGHTNESS || type == LP_POWER_CAP || type == LP_STREAM ||
           (type == LP_LEDS && (f->payload[0] & LP_LEDS_SHOW));
}

static void handle(const lp_frame *f)
{
    if (f->type == LP_HELLO)
        lp_seq_reset(&rx_seq); /* HELLO resynchronises whatever its seq */
    int gap = lp_seq_check(&rx_seq, f->seq);
    if (gap == LP_SEQ_DUPLICATE) {
        if (lp_payload_check(f, N_LEDS) == LP_OK && acknowledged(f->type, f))
            send_ack(f);
        return;
    }
    seq_gaps = (uint16_t)(seq_gaps + gap);
    int r = lp_payload_check(f, N_LEDS);
    if (r != LP_OK) {
        send_nak(f, (uint8_t)-r);
        return;
    }
    rx_frames++;
    last_host_ms = hal_millis();
    mode = LP_MODE_LIVE;
    switch (f->type) {
    case LP_HELLO:
        if (f->payload[0] != LP_VERSION) {
            send_nak(f, LP_E_VERSION);
            return;
        }
        send_info();
        sensor_err_reported = 0; /* a host that (re)connects hears about an ongoing outage */
        break;
    case LP_PING:
        send_frame(LP_PONG, f->payload, f->len);
        break;
    case LP_LEDS: {
        uint16_t start = lp_get_u16(f->payload + 1);
        memcpy(pixels + 3 * start, f->payload + 3, (size_t)(f->len - 3));
        prelimited = (f->payload[0] & LP_LEDS_PRELIMITED) ? 1 : 0;
        if (f->payload[0] & LP_LEDS_SHOW) {
            show(pixels, !prelimited);
            send_ack(f);
        }
        break;
    }
    case LP_BRIGHTNESS:
        brightness = f->payload[0];
        send_ack(f);
        break;
    case LP_POWER_CAP:
        power_cap_ma = lp_get_u16(f->payload);
        send_ack(f);
        break;
    case LP_STREAM: {
        uint16_t rate = lp_get_u16(f->payload);
        if (rate == 0) {
            stream_every = 0;
        } else {
            if (rate > PAD_RATE_HZ)
                rate = PAD_RATE_HZ;
            stream_every = (uint8_t)((PAD_RATE_HZ + rate - 1) / rate);
        }
        stream_count = 0;
        send_ack(f);
        break;
    }
    case LP_STATUS_REQ:
        send_status();
        break;
    }
}

static void scan_pads(uint32_t now)
{
    uint8_t status = 0;
    if (!touch_ok && now - last_sensor_retry_ms >= SENSOR_RETRY_MS) {
        last_sensor_retry_ms = now;
        touch_ok = mpr121_begin(MPR121_ADDR, N_PADS, TOUCH_THRESHOLD, RELEASE_THRESHOLD) == 0;
    }
    if (touch_ok && mpr121_read(MPR121_ADDR, N_PADS, &reading) != 0) {
        touch_ok = 0;
        last_sensor_retry_ms = now;
    }
    if (!touch_ok) {
        sensor_errors++;
        status |= LP_SENSOR_FAIL;
        if (!sensor_err_reported) { /* once per outage, not 100 times a second */
            send_error(LP_E_SENSOR, MPR121_ADDR, HAL_TEXT("MPR121 not answering: check SDA/SCL, 3.3V, ADDR"));
            sensor_err_reported = 1;
        }
    } else {
        sensor_err_reported = 0;
        if (reading.overcurrent)
            status |= LP_SENSOR_OVERCURRENT;
    }
    if (stream_every && ++stream_count >= stream_every) {
        uint8_t p[LP_SENSOR_HEADER_LEN + 4 * N_PADS];
        stream_count = 0;
        size_t n = lp_sensor_payload(p, now, reading.touched, status, N_PADS, reading.raw, reading.baseline);
        send_frame(LP_SENSOR, p, (uint8_t)n);
    }
}

void companion_init(void)
{
    hal_init();
    lp_rx_init(&rx);
    lp_seq_reset(&rx_seq);
    uint32_t now = hal_millis();
    touch_ok = mpr121_begin(MPR121_ADDR, N_PADS, TOUCH_THRESHOLD, RELEASE_THRESHOLD) == 0;
    last_sensor_retry_ms = now;
    next_scan_ms = now;
    last_host_ms = now;
}

void companion_poll(void)
{
    int c;
    lp_frame f;
    while ((c = hal_uart_getc()) >= 0) {
        int r = lp_rx_feed(&rx, (uint8_t)c, &f);
        if (r == 1) {
            handle(&f);
        } else if (r < 0) {
            rx_errors++;
            send_error((uint8_t)-r, 0, 0);
        }
    }
    if (hal_uart_take_overflow()) {
        rx_errors++;
        send_error(LP_E_RX_OVERFLOW, 0, HAL_TEXT("serial bytes lost: ring full or UART overrun"));
    }
    uint32_t now = hal_millis();
    /* Steady pad rate: the next scan is due a fixed period after the last one was due,
     * not after it finished, so jitter does not accumulate into a slower rate. */
    if ((int32_t)(now - next_scan_ms) >= 0) {
        scan_pads(now);
        next_scan_ms += SCAN_PERIOD_MS;
        if ((int32_t)(now - next_scan_ms) > 10 * SCAN_PERIOD_MS)
            next_scan_ms = now; /* fell far behind (a long burst): skip, don't catch up */
    }
    if (mode == LP_MODE_LIVE && now - last_host_ms > IDLE_TIMEOUT_MS)
        mode = LP_MODE_IDLE;
    /* Only draw while the line is quiet: the show blocks interrupts for ~0.7 ms. */
    if (mode == LP_MODE_IDLE && now - last_idle_ms >= IDLE_FRAME_MS && !hal_uart_pending() && rx.n == 0) {
        last_idle_ms = now;
        render_idle(now);
    }
}

#if defined(__AVR__) && !defined(ARDUINO)
int main(void)
{
    companion_init();
    for (;;)
        companion_poll();
}
#endif
