/*
 * WS2812 ("NeoPixel") output for the ATmega328P at 16 MHz, bit-banged with counted cycles.
 *
 * One bit is 20 cycles = 1.25 us (800 kHz). The line goes high at cycle 0 and low at cycle
 * 6 for a 0 (375 ns; WS2812B: 220-550 ns across datasheet revisions) or at cycle 12 for a 1
 * (750 ns; 580-1000 ns). The last bit of each byte takes 4 more cycles to fetch the next
 * byte (1.5 us period, within the +-600 ns tolerance). Interrupts are off while sending
 * (~30 us per pixel); the protocol's SHOW/ACK rule keeps the host quiet meanwhile.
 * The simavr harness (firmware/sim/harness.c) measures these edges and decodes the pixels.
 *
 * Data pin: PD6 (Arduino D6); change WS2812_PORT/DDR/BIT to move it.
 */
#include "ws2812.h"

#ifdef __AVR__
#include <avr/interrupt.h>
#include <avr/io.h>

#ifndef WS2812_PORT
#define WS2812_PORT PORTD
#define WS2812_DDR DDRD
#define WS2812_BIT 6
#endif

#if F_CPU != 16000000UL
#error "ws2812.c is cycle-counted for F_CPU = 16 MHz"
#endif

void ws2812_init(void)
{
    WS2812_PORT &= (uint8_t)~(1 << WS2812_BIT);
    WS2812_DDR |= (uint8_t)(1 << WS2812_BIT);
}

void ws2812_send(const uint8_t *grb, uint16_t nbytes)
{
    if (nbytes == 0)
        return;
    uint8_t sreg = SREG;
    cli();
    uint8_t lo = WS2812_PORT & (uint8_t)~(1 << WS2812_BIT);
    uint8_t hi = lo | (uint8_t)(1 << WS2812_BIT);
    uint8_t b = *grb++;
    uint8_t n = 8;
    __asm__ volatile(
        "1:  out  %[port], %[hi]  \n\t" /* c0: rise                          */
        "    nop                  \n\t" /* c1                                */
        "    nop                  \n\t" /* c2                                */
        "    nop                  \n\t" /* c3                                */
        "    nop                  \n\t" /* c4                                */
        "    sbrs %[b], 7         \n\t" /* c5: bit set -> skip (2 cycles)    */
        "    out  %[port], %[lo]  \n\t" /* c6: fall for a 0                  */
        "    lsl  %[b]            \n\t" /* c7                                */
        "    nop                  \n\t" /* c8                                */
        "    nop                  \n\t" /* c9                                */
        "    nop                  \n\t" /* c10                               */
        "    nop                  \n\t" /* c11                               */
        "    out  %[port], %[lo]  \n\t" /* c12: fall for a 1                 */
        "    dec  %[n]            \n\t" /* c13                               */
        "    breq 2f              \n\t" /* c14 (taken: c14-c15)              */
        "    nop                  \n\t" /* c15                               */
        "    nop                  \n\t" /* c16                               */
        "    nop                  \n\t" /* c17                               */
        "    rjmp 1b              \n\t" /* c18-c19 -> c20 = next c0          */
        "2:  sbiw %[cnt], 1       \n\t" /* c16-c17                           */
        "    breq 3f              \n\t" /* c18                               */
        "    ld   %[b], %a[ptr]+  \n\t" /* c19-c20                           */
        "    ldi  %[n], 8         \n\t" /* c21                               */
        "    rjmp 1b              \n\t" /* c22-c23 -> c24 = next c0          */
        "3:                       \n\t"
        : [b] "+r"(b), [n] "+d"(n), [cnt] "+w"(nbytes), [ptr] "+e"(grb)
        : [port] "I"(_SFR_IO_ADDR(WS2812_PORT)), [hi] "r"(hi), [lo] "r"(lo));
    SREG = sreg;
}
#endif
