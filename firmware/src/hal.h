/*
 * The few board services the companion needs, one small file per board:
 * hal_avr.c (ATmega328P, plain avr-libc) and hal_pico.cpp (RP2040, Arduino-Pico core).
 * Keeping main.c, protocol.c and mpr121.c free of registers is what lets the same logic
 * run on both boards and the protocol code run in host tests and the fuzzer.
 */
#ifndef LANTHORN_HAL_H
#define LANTHORN_HAL_H

#include <stdint.h>

/* Constant texts (ERROR frames) stay in flash on the AVR, whose 2 KB of RAM would
 * otherwise hold a copy of every string; elsewhere they are ordinary strings. */
#if defined(__AVR__)
#include <avr/pgmspace.h>
#define HAL_TEXT(s) PSTR(s)
#define hal_text_byte(p, i) ((char)pgm_read_byte((p) + (i)))
#else
#define HAL_TEXT(s) (s)
#define hal_text_byte(p, i) ((p)[i])
#endif

#ifdef __cplusplus
extern "C" {
#endif

void hal_init(void);
uint32_t hal_millis(void);
void hal_delay_ms(uint16_t ms);

/* Serial link to the host. getc returns -1 when nothing is waiting. */
int hal_uart_getc(void);
uint8_t hal_uart_pending(void);        /* nonzero while received bytes wait to be read */
uint8_t hal_uart_take_overflow(void);  /* 1 once after the receive ring overflowed */
void hal_uart_write(const uint8_t *data, uint16_t n); /* blocks only while its ring is full */

/* I2C master (400 kHz). 0 on success, nonzero if the device did not answer. */
uint8_t hal_i2c_write_reg(uint8_t addr7, uint8_t reg, uint8_t value);
uint8_t hal_i2c_read_regs(uint8_t addr7, uint8_t reg, uint8_t *out, uint8_t n);

/* Send bytes to the WS2812 ring, already in wire (GRB) order, then latch. */
void hal_ws2812_show(const uint8_t *grb, uint16_t nbytes);

#ifdef __cplusplus
}
#endif
#endif
