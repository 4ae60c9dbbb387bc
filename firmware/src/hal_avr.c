/*
 * Board services on the ATmega328P (Arduino Nano/Uno) with plain avr-libc, no Arduino core:
 * Timer0 millisecond clock, interrupt-driven USART0 with receive and transmit rings, polled
 * TWI with timeouts (a dead or unplugged touch board must never hang the loop), and the
 * cycle-counted WS2812 output from ws2812.c.
 */
#ifdef __AVR__
#include "hal.h"

#include <avr/interrupt.h>
#include <avr/io.h>
#include <util/atomic.h>
#include <util/delay.h>

#include "ws2812.h"

#ifndef BAUD_RATE
#define BAUD_RATE 115200UL
#endif
#define RX_RING 128 /* > one LED frame of 24 pixels; power of two */
#define TX_RING 128

static volatile uint32_t millis_count;
static volatile uint8_t rx_buf[RX_RING], rx_head, rx_tail, rx_overflow;
static volatile uint8_t tx_buf[TX_RING], tx_head, tx_tail;

ISR(TIMER0_COMPA_vect) { millis_count++; }

ISR(USART_RX_vect)
{
    /* DOR0: the UART's 2-byte FIFO overran (interrupts were off too long, e.g. a host that
     * sent during a WS2812 show): bytes are gone, so report it like a full ring. Read the
     * status before UDR0, as the datasheet requires. */
    uint8_t overrun = UCSR0A & (1 << DOR0);
    uint8_t c = UDR0;
    uint8_t next = (uint8_t)((rx_head + 1) & (RX_RING - 1));
    if (overrun)
        rx_overflow = 1;
    if (next == rx_tail) {
        rx_overflow = 1;
        return;
    }
    rx_buf[rx_head] = c;
    rx_head = next;
}

ISR(USART_UDRE_vect)
{
    if (tx_head == tx_tail) {
        UCSR0B &= (uint8_t)~(1 << UDRIE0);
        return;
    }
    UDR0 = tx_buf[tx_tail];
    tx_tail = (uint8_t)((tx_tail + 1) & (TX_RING - 1));
}

void hal_init(void)
{
    /* 1 kHz tick: 16 MHz / 64 / 250 */
    TCCR0A = (1 << WGM01);
    TCCR0B = (1 << CS01) | (1 << CS00);
    OCR0A = F_CPU / 64 / 1000 - 1;
    TIMSK0 = (1 << OCIE0A);
    /* USART0, double speed: UBRR = F_CPU / (8 * baud) - 1 rounded (16 -> 117647 baud, +2.1%,
     * the same setting as the Arduino core, which every USB-serial chip accepts). */
    uint16_t ubrr = (uint16_t)((F_CPU / 4 / BAUD_RATE - 1) / 2);
    UCSR0A = (1 << U2X0); /* before UBRR: simavr derives its byte time when UBRR0L is written */
    UBRR0H = (uint8_t)(ubrr >> 8);
    UBRR0L = (uint8_t)ubrr;
    UCSR0C = (1 << UCSZ01) | (1 << UCSZ00);
    UCSR0B = (1 << RXEN0) | (1 << TXEN0) | (1 << RXCIE0);
    /* TWI at 400 kHz: F_CPU / (16 + 2 * TWBR * prescaler 1) */
    TWSR = 0;
    TWBR = (uint8_t)((F_CPU / 400000UL - 16) / 2);
    PORTC |= (1 << PC4) | (1 << PC5); /* weak pull-ups; the breakout has the real ones */
    ws2812_init();
    sei();
}

uint32_t hal_millis(void)
{
    uint32_t m;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { m = millis_count; }
    return m;
}

void hal_delay_ms(uint16_t ms)
{
    uint32_t start = hal_millis();
    while (hal_millis() - start < ms) {
    }
}

int hal_uart_getc(void)
{
    if (rx_head == rx_tail)
        return -1;
    uint8_t c = rx_buf[rx_tail];
    rx_tail = (uint8_t)((rx_tail + 1) & (RX_RING - 1));
    return c;
}

uint8_t hal_uart_pending(void) { return rx_head != rx_tail; }

uint8_t hal_uart_take_overflow(void)
{
    uint8_t o;
    ATOMIC_BLOCK(ATOMIC_RESTORESTATE) { o = rx_overflow; rx_overflow = 0; }
    return o;
}

void hal_uart_write(const uint8_t *data, uint16_t n)
{
    for (uint16_t i = 0; i < n; i++) {
        uint8_t next = (uint8_t)((tx_head + 1) & (TX_RING - 1));
        while (next == tx_tail) {
        } /* the UDRE interrupt drains it */
        tx_buf[tx_head] = data[i];
        tx_head = next;
        UCSR0B |= (1 << UDRIE0);
    }
}

/* --- TWI master, polled. Each wait gives up after ~1 ms (far longer than a byte). --- */
#define TW_START 0x08
#define TW_REP_START 0x10
#define TW_MT_SLA_ACK 0x18
#define TW_MT_DATA_ACK 0x28
#define TW_MR_SLA_ACK 0x40
#define TW_MR_DATA_ACK 0x50
#define TW_MR_DATA_NACK 0x58

static uint8_t twi_wait(void)
{
    for (uint16_t i = 0; i < 4000; i++)
        if (TWCR & (1 << TWINT))
            return TWSR & 0xF8;
    return 0xFF;
}

static uint8_t twi_cmd(uint8_t flags)
{
    TWCR = (uint8_t)((1 << TWINT) | (1 << TWEN) | flags);
    return twi_wait();
}

static void twi_stop(void)
{
    TWCR = (1 << TWINT) | (1 << TWEN) | (1 << TWSTO);
    for (uint16_t i = 0; i < 4000 && (TWCR & (1 << TWSTO)); i++) {
    }
}

static uint8_t twi_begin(uint8_t addr7, uint8_t reg)
{
    uint8_t s = twi_cmd(1 << TWSTA);
    if (s != TW_START && s != TW_REP_START)
        return 1;
    TWDR = (uint8_t)(addr7 << 1);
    if (twi_cmd(0) != TW_MT_SLA_ACK)
        return 1;
    TWDR = reg;
    if (twi_cmd(0) != TW_MT_DATA_ACK)
        return 1;
    return 0;
}

uint8_t hal_i2c_write_reg(uint8_t addr7, uint8_t reg, uint8_t value)
{
    uint8_t err = twi_begin(addr7, reg);
    if (!err) {
        TWDR = value;
        err = twi_cmd(0) != TW_MT_DATA_ACK;
    }
    twi_stop();
    return err;
}

uint8_t hal_i2c_read_regs(uint8_t addr7, uint8_t reg, uint8_t *out, uint8_t n)
{
    uint8_t err = twi_begin(addr7, reg);
    if (!err) {
        uint8_t s = twi_cmd(1 << TWSTA); /* repeated start, then read */
        err = s != TW_REP_START;
    }
    if (!err) {
        TWDR = (uint8_t)((addr7 << 1) | 1);
        err = twi_cmd(0) != TW_MR_SLA_ACK;
    }
    for (uint8_t i = 0; !err && i < n; i++) {
        uint8_t last = i + 1 == n;
        uint8_t s = twi_cmd(last ? 0 : (1 << TWEA));
        if (s != (last ? TW_MR_DATA_NACK : TW_MR_DATA_ACK))
            err = 1;
        else
            out[i] = TWDR;
    }
    twi_stop();
    return err;
}

void hal_ws2812_show(const uint8_t *grb, uint16_t nbytes) { ws2812_send(grb, nbytes); }

#endif /* __AVR__ */
