/* WS2812 output on the ATmega328P at 16 MHz: cycle-counted, see ws2812.c. */
#ifndef LANTHORN_WS2812_H
#define LANTHORN_WS2812_H
#include <stdint.h>
void ws2812_init(void);
void ws2812_send(const uint8_t *grb, uint16_t nbytes);
#endif
