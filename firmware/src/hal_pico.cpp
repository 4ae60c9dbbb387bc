/*
 * Board services on the Raspberry Pi Pico (RP2040) with the Arduino-Pico core
 * (PlatformIO env "pico"). USB CDC serial to the Pi, Wire for the MPR121, and the WS2812
 * ring driven by a PIO state machine, so the CPU never bit-bangs and interrupts stay on.
 *
 * Status: written against the Arduino-Pico and pico-sdk APIs but NOT compiled or run in
 * this repository's CI (no RP2040 toolchain or emulator here); the AVR build is the tested
 * one. The logic it serves (main.c, protocol.c, mpr121.c) is shared and tested.
 */
#include <Arduino.h>
#include <Wire.h>

#include "hardware/clocks.h"
#include "hardware/pio.h"

extern "C" {
#include "hal.h"
void companion_init(void);
void companion_poll(void);
}

#ifndef WS2812_PIN
#define WS2812_PIN 2
#endif
#ifndef I2C_SDA_PIN
#define I2C_SDA_PIN 4
#endif
#ifndef I2C_SCL_PIN
#define I2C_SCL_PIN 5
#endif

/* pico-examples ws2812.pio, assembled: 10 PIO cycles per bit (T1=2, T2=5, T3=3), side-set
 * pin = data. out x,1 side 0 [2] / jmp !x 3 side 1 [1] / jmp 0 side 1 [4] / nop side 0 [4] */
static const uint16_t ws2812_program_instructions[] = {0x6221, 0x1123, 0x1400, 0xa442};
static const pio_program_t ws2812_program = {ws2812_program_instructions, 4, -1};
static PIO ws_pio = pio0;
static uint ws_sm;

static void ws2812_pio_init(void)
{
    uint offset = pio_add_program(ws_pio, &ws2812_program);
    ws_sm = pio_claim_unused_sm(ws_pio, true);
    pio_gpio_init(ws_pio, WS2812_PIN);
    pio_sm_set_consecutive_pindirs(ws_pio, ws_sm, WS2812_PIN, 1, true);
    pio_sm_config c = pio_get_default_sm_config();
    sm_config_set_wrap(&c, offset + 0, offset + 3);
    sm_config_set_sideset(&c, 1, false, false);
    sm_config_set_sideset_pins(&c, WS2812_PIN);
    sm_config_set_out_shift(&c, false, true, 24); /* MSB first, autopull every 24 bits */
    sm_config_set_fifo_join(&c, PIO_FIFO_JOIN_TX);
    sm_config_set_clkdiv(&c, clock_get_hz(clk_sys) / (800000.0f * 10));
    pio_sm_init(ws_pio, ws_sm, offset, &c);
    pio_sm_set_enabled(ws_pio, ws_sm, true);
}

extern "C" {

void hal_init(void)
{
    Serial.begin(115200); /* USB CDC: the rate is nominal */
    Wire.setSDA(I2C_SDA_PIN);
    Wire.setSCL(I2C_SCL_PIN);
    Wire.begin();
    Wire.setClock(400000);
    Wire.setTimeout(2);
    ws2812_pio_init();
}

uint32_t hal_millis(void) { return millis(); }
void hal_delay_ms(uint16_t ms) { delay(ms); }

int hal_uart_getc(void) { return Serial.available() ? Serial.read() : -1; }
uint8_t hal_uart_pending(void) { return Serial.available() > 0; }
uint8_t hal_uart_take_overflow(void) { return 0; /* USB CDC is flow-controlled */ }
void hal_uart_write(const uint8_t *data, uint16_t n) { Serial.write(data, n); }

uint8_t hal_i2c_write_reg(uint8_t addr7, uint8_t reg, uint8_t value)
{
    Wire.beginTransmission(addr7);
    Wire.write(reg);
    Wire.write(value);
    return Wire.endTransmission() != 0;
}

uint8_t hal_i2c_read_regs(uint8_t addr7, uint8_t reg, uint8_t *out, uint8_t n)
{
    Wire.beginTransmission(addr7);
    Wire.write(reg);
    if (Wire.endTransmission(false) != 0)
        return 1;
    if (Wire.requestFrom(addr7, n) != n)
        return 1;
    for (uint8_t i = 0; i < n; i++)
        out[i] = (uint8_t)Wire.read();
    return 0;
}

void hal_ws2812_show(const uint8_t *grb, uint16_t nbytes)
{
    for (uint16_t i = 0; i + 2 < nbytes; i += 3) {
        uint32_t word = ((uint32_t)grb[i] << 24) | ((uint32_t)grb[i + 1] << 16) | ((uint32_t)grb[i + 2] << 8);
        pio_sm_put_blocking(ws_pio, ws_sm, word);
    }
}

} /* extern "C" */

void setup() { companion_init(); }
void loop() { companion_poll(); }
