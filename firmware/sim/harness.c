/*
 * simavr harness for the lanthorn companion: runs the unmodified firmware ELF on a
 * simulated ATmega328P at 16 MHz with
 *   - UART0 bridged to a pseudo-terminal (simavr's uart_pty part), so the Python companion
 *     backend talks to it through pyserial exactly as to a Nano on /dev/ttyUSB0;
 *   - an MPR121 model on the TWI bus at 0x5A (simavr has none): register file, soft reset,
 *     stop/run mode, thresholds, and a synthetic finger that walks clockwise round the ring;
 *   - a WS2812 receiver on PD6 that measures every high pulse in CPU cycles, decodes the
 *     bits into pixels, and reports each latched frame with its timing.
 * The simulation is throttled to real time so the firmware's millisecond clock (idle
 * timeout, pad rate) means what it says to the host.
 *
 * Output on stdout, one line per event (the test parses these):
 *   PTY <path>
 *   LEDS t_ms=<n> bits=<n> t0h=<min>..<max> t1h=<min>..<max> period=<min>..<max> bad=<n> grb=<hex>
 *   SUMMARY cycles=<n> sim_ms=<n> wall_ms=<n> i2c_reads=<n> frames=<n> bad_bits=<n>
 *           ram_static=<.data+.bss> stack_peak=<bytes> ram_free=<never touched> state=<n>
 *
 * usage: simavr-harness [--no-touch] [--seconds S] firmware.elf
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "avr_ioport.h"
#include "avr_twi.h"
#include "sim_avr.h"
#include "sim_elf.h"
#include "sim_irq.h"
#include "parts/uart_pty.h"

#define F_CPU 16000000ULL
#define CYCLES_PER_MS (F_CPU / 1000)

/* WS2812B timing limits in cycles at 16 MHz (62.5 ns), covering the datasheet revisions. */
#define T0H_MIN 4   /* 250 ns */
#define T0H_MAX 8   /* 500 ns */
#define T1H_MIN 10  /* 625 ns */
#define T1H_MAX 15  /* 937 ns */
#define PERIOD_MAX 40 /* a low longer than this inside a frame risks a premature latch */
#define LATCH_CYCLES 1280 /* 80 us low: the pixels latch */
#define STACK_PAINT 0xA5

static volatile sig_atomic_t stop;
static avr_t *avr;

/* ---------------------------------------------------------------- MPR121 model */
#define MPR121_ADDR8 (0x5A << 1)
typedef struct {
    avr_irq_t *irq;
    uint8_t reg[256];
    uint8_t selected, index, ptr;
    uint8_t present;
    uint8_t addr_phase; /* the last bus event was SLA+W/R: see twi_status_hook */
    uint8_t touched_state; /* hysteresis per pad is overkill for a two-level model */
    unsigned long reads;
} mpr121_t;
static mpr121_t chip;

static void mpr121_reset(mpr121_t *m)
{
    memset(m->reg, 0, sizeof m->reg);
    m->reg[0x5C] = 0x10;
    m->reg[0x5D] = 0x24;
}

/* The synthetic finger: nothing for the first second, then pad k = (t/400) % 12 is
 * touched for 300 ms of every 400 ms. Baseline of pad i: 700 + 4*i; touch drops it by 60. */
static void mpr121_pad(uint32_t t_ms, int i, uint16_t *raw, uint16_t *base)
{
    *base = (uint16_t)(700 + 4 * i);
    *raw = *base;
    if (t_ms >= 1000 && (int)((t_ms / 400) % 12) == i && t_ms % 400 < 300)
        *raw = (uint16_t)(*base - 60);
}

static uint8_t mpr121_read_reg(mpr121_t *m, uint8_t r)
{
    uint32_t t_ms = (uint32_t)(avr->cycle / CYCLES_PER_MS);
    int running = (m->reg[0x5E] & 0x0F) != 0;
    int n = m->reg[0x5E] & 0x0F;
    if (r <= 0x29) {
        if (!running)
            return 0;
        if (r <= 0x01) {
            uint16_t status = 0;
            for (int i = 0; i < n && i < 12; i++) {
                uint16_t raw, base;
                mpr121_pad(t_ms, i, &raw, &base);
                if (base - raw > m->reg[0x41 + 2 * i])
                    status |= (uint16_t)(1u << i);
            }
            return r == 0 ? (uint8_t)status : (uint8_t)(status >> 8);
        }
        if (r >= 0x04 && r <= 0x1B) {
            int i = (r - 0x04) / 2;
            uint16_t raw, base;
            mpr121_pad(t_ms, i, &raw, &base);
            if (i >= n)
                raw = 0;
            return (r & 1) ? (uint8_t)(raw >> 8) : (uint8_t)raw;
        }
        if (r >= 0x1E) {
            int i = r - 0x1E;
            uint16_t raw, base;
            mpr121_pad(t_ms, i, &raw, &base);
            return i < n ? (uint8_t)(base >> 2) : 0;
        }
        return 0;
    }
    return m->reg[r];
}

static void mpr121_write_reg(mpr121_t *m, uint8_t r, uint8_t v)
{
    if (r == 0x80) {
        if (v == 0x63)
            mpr121_reset(m);
        return;
    }
    /* Like the chip: configuration registers only change in stop mode (ECR run bits 0). */
    if (r != 0x5E && (m->reg[0x5E] & 0x3F) && r >= 0x2B)
        return;
    m->reg[r] = v;
}

static void mpr121_twi_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    mpr121_t *m = param;
    avr_twi_msg_irq_t v;
    v.u.v = value;
    if (getenv("HARNESS_I2C_TRACE"))
        fprintf(stderr, "i2c msg=%02x addr=%02x data=%02x\n", v.u.twi.msg, v.u.twi.addr, v.u.twi.data);
    if (v.u.twi.msg & TWI_COND_STOP)
        m->selected = 0;
    if (v.u.twi.msg & TWI_COND_START) {
        m->selected = 0;
        m->index = 0;
        m->addr_phase = 1;
        if (m->present && (v.u.twi.addr & 0xFE) == MPR121_ADDR8) {
            m->selected = v.u.twi.addr;
            avr_raise_irq(m->irq + TWI_IRQ_INPUT, avr_twi_irq_msg(TWI_COND_ACK, m->selected, 1));
        }
    }
    if (!m->selected)
        return;
    if (v.u.twi.msg & TWI_COND_WRITE) {
        avr_raise_irq(m->irq + TWI_IRQ_INPUT, avr_twi_irq_msg(TWI_COND_ACK, m->selected, 1));
        if (m->index++ == 0)
            m->ptr = v.u.twi.data;
        else
            mpr121_write_reg(m, m->ptr++, v.u.twi.data);
    }
    if (v.u.twi.msg & TWI_COND_READ) {
        uint8_t data = mpr121_read_reg(m, m->ptr);
        if (m->ptr == 0)
            m->reads++;
        m->ptr++;
        avr_raise_irq(m->irq + TWI_IRQ_INPUT, avr_twi_irq_msg(TWI_COND_READ, m->selected, data));
    }
}

/* simavr 1.6 (Debian bookworm) reports 0x28 (data ACKed) instead of 0x18 (SLA+W ACKed)
 * after the address byte of a write; upstream fixed this later. A real ATmega328P says
 * 0x18, and the firmware checks for exactly that, so the harness corrects the status
 * register right after simavr sets it, before the firmware can read it. */
#define TWSR_ADDR 0xB9
static void twi_status_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    mpr121_t *m = param;
    if (getenv("HARNESS_I2C_TRACE"))
        fprintf(stderr, "i2c status=%02x\n", value);
    if (m->addr_phase && value == 0x28)
        avr->data[TWSR_ADDR] = (uint8_t)((avr->data[TWSR_ADDR] & 0x07) | 0x18);
    m->addr_phase = 0;
}

/* simavr 1.6 also stores the TWINT bit the firmware writes to TWCR, so the flag reads as
 * set at once and a polling master sees the previous status. On the chip, writing one
 * clears TWINT until the bus operation finishes; this write watcher (called after
 * simavr's own TWCR handler) restores that, and simavr's state timer sets TWINT again
 * when the operation completes. */
#define TWCR_ADDR 0xBC
#define TWINT_BIT 0x80
static void twcr_write_hook(struct avr_t *a, avr_io_addr_t addr, uint8_t v, void *param)
{
    (void)param;
    if (v & TWINT_BIT)
        a->data[addr] &= (uint8_t)~TWINT_BIT;
}

static const char *mpr121_irq_names[2] = {"8>mpr121.out", "32<mpr121.in"};

static void mpr121_attach(mpr121_t *m, int present)
{
    mpr121_reset(m);
    m->present = (uint8_t)present;
    m->irq = avr_alloc_irq(&avr->irq_pool, 0, 2, mpr121_irq_names);
    avr_irq_register_notify(m->irq + TWI_IRQ_OUTPUT, mpr121_twi_hook, m);
    avr_connect_irq(m->irq + TWI_IRQ_INPUT, avr_io_getirq(avr, AVR_IOCTL_TWI_GETIRQ(0), TWI_IRQ_INPUT));
    avr_connect_irq(avr_io_getirq(avr, AVR_IOCTL_TWI_GETIRQ(0), TWI_IRQ_OUTPUT), m->irq + TWI_IRQ_OUTPUT);
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_TWI_GETIRQ(0), TWI_IRQ_STATUS), twi_status_hook, m);
    avr_register_io_write(avr, TWCR_ADDR, twcr_write_hook, m);
}

/* ---------------------------------------------------------------- WS2812 receiver */
#define MAX_BITS (8 * 3 * 256)
static struct {
    uint8_t level;
    uint64_t rise, fall, prev_rise;
    uint32_t nbits, bad;
    uint8_t bytes[MAX_BITS / 8];
    uint32_t t0h_min, t0h_max, t1h_min, t1h_max, per_min, per_max;
    unsigned long frames, bad_total;
} ws;

static void ws_reset_frame(void)
{
    ws.nbits = 0;
    ws.bad = 0;
    ws.t0h_min = ws.t1h_min = ws.per_min = UINT32_MAX;
    ws.t0h_max = ws.t1h_max = ws.per_max = 0;
    memset(ws.bytes, 0, sizeof ws.bytes);
}

static void ws_pin_hook(struct avr_irq_t *irq, uint32_t value, void *param)
{
    (void)irq;
    (void)param;
    uint64_t now = avr->cycle;
    value = value ? 1 : 0;
    if (value == ws.level)
        return;
    ws.level = (uint8_t)value;
    if (value) {
        if (ws.nbits > 0) {
            uint32_t period = (uint32_t)(now - ws.rise);
            if (period < ws.per_min) ws.per_min = period;
            if (period > ws.per_max) ws.per_max = period;
            if (period > PERIOD_MAX) ws.bad++;
        }
        ws.rise = now;
        return;
    }
    uint32_t high = (uint32_t)(now - ws.rise);
    int bit;
    if (high >= T0H_MIN && high <= T0H_MAX) {
        bit = 0;
        if (high < ws.t0h_min) ws.t0h_min = high;
        if (high > ws.t0h_max) ws.t0h_max = high;
    } else if (high >= T1H_MIN && high <= T1H_MAX) {
        bit = 1;
        if (high < ws.t1h_min) ws.t1h_min = high;
        if (high > ws.t1h_max) ws.t1h_max = high;
    } else {
        ws.bad++;
        bit = high > T0H_MAX;
    }
    if (ws.nbits < MAX_BITS) {
        if (bit)
            ws.bytes[ws.nbits / 8] |= (uint8_t)(0x80 >> (ws.nbits % 8));
        ws.nbits++;
    }
    ws.fall = now;
}

static void ws_flush_if_latched(void)
{
    if (ws.nbits == 0 || ws.level || avr->cycle - ws.fall < LATCH_CYCLES)
        return;
    if (ws.nbits % 8)
        ws.bad++;
    printf("LEDS t_ms=%llu bits=%u t0h=%u..%u t1h=%u..%u period=%u..%u bad=%u grb=",
           (unsigned long long)(ws.fall / CYCLES_PER_MS), ws.nbits,
           ws.t0h_min == UINT32_MAX ? 0 : ws.t0h_min, ws.t0h_max,
           ws.t1h_min == UINT32_MAX ? 0 : ws.t1h_min, ws.t1h_max,
           ws.per_min == UINT32_MAX ? 0 : ws.per_min, ws.per_max, ws.bad);
    for (uint32_t i = 0; i < ws.nbits / 8; i++)
        printf("%02x", ws.bytes[i]);
    printf("\n");
    fflush(stdout);
    ws.frames++;
    ws.bad_total += ws.bad;
    ws_reset_frame();
}

/* ---------------------------------------------------------------- main */
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static double wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int touch = 1;
    double seconds = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-touch"))
            touch = 0;
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else
            path = argv[i];
    }
    if (!path) {
        fprintf(stderr, "usage: %s [--no-touch] [--seconds S] firmware.elf\n", argv[0]);
        return 2;
    }
    elf_firmware_t fw;
    memset(&fw, 0, sizeof fw);
    if (elf_read_firmware(path, &fw) != 0) {
        fprintf(stderr, "%s: cannot read firmware ELF\n", path);
        return 2;
    }
    avr = avr_make_mcu_by_name("atmega328p");
    if (!avr || avr_init(avr) != 0) {
        fprintf(stderr, "simavr: no atmega328p core\n");
        return 2;
    }
    avr_load_firmware(avr, &fw);
    avr->frequency = F_CPU;

    /* Paint the RAM above .data + .bss; whatever the run leaves unpainted is the stack's
     * high-water mark (the firmware has no heap). */
    uint16_t ram_static_end = (uint16_t)(0x100 + fw.datasize + fw.bsssize);
    for (uint32_t a = ram_static_end; a <= avr->ramend; a++)
        avr->data[a] = STACK_PAINT;

    static uart_pty_t pty;
    uart_pty_init(avr, &pty);
    uart_pty_connect(&pty, '0');
    mpr121_attach(&chip, touch);
    ws_reset_frame();
    avr_irq_register_notify(avr_io_getirq(avr, AVR_IOCTL_IOPORT_GETIRQ('D'), 6), ws_pin_hook, NULL);

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("PTY %s\n", pty.pty.slavename);
    fflush(stdout);

    double t0 = wall_s();
    int state = cpu_Running;
    while (!stop && state != cpu_Done && state != cpu_Crashed) {
        for (int i = 0; i < 2000 && state != cpu_Done && state != cpu_Crashed; i++)
            state = avr_run(avr);
        ws_flush_if_latched();
        double sim = (double)avr->cycle / (double)F_CPU;
        if (seconds > 0 && sim >= seconds)
            break;
        double ahead = sim - (wall_s() - t0);
        if (ahead > 0.001)
            usleep((useconds_t)(ahead * 1e6));
    }
    ws_flush_if_latched();
    uint32_t low = ram_static_end;
    while (low <= avr->ramend && avr->data[low] == STACK_PAINT)
        low++;
    printf("SUMMARY cycles=%llu sim_ms=%llu wall_ms=%.0f i2c_reads=%lu frames=%lu bad_bits=%lu "
           "ram_static=%u stack_peak=%u ram_free=%u state=%d\n",
           (unsigned long long)avr->cycle, (unsigned long long)(avr->cycle / CYCLES_PER_MS),
           (wall_s() - t0) * 1000.0, chip.reads, ws.frames, ws.bad_total,
           (unsigned)(ram_static_end - 0x100), (unsigned)(avr->ramend + 1 - low),
           (unsigned)(low - ram_static_end), state);
    fflush(stdout);
    fflush(stderr);
    /* Not uart_pty_stop(): in simavr 1.6 it can block joining the pty thread. The process
     * is ending; the kernel closes the pty. */
    _exit(state == cpu_Crashed ? 1 : 0);
}
