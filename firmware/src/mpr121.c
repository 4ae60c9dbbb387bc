/*
 * MPR121 driver over the board's I2C (hal.h). Register map and the start-up sequence follow
 * the NXP MPR121 datasheet and application note AN3944 (the same values Adafruit's library
 * uses, so a maker's breakout behaves as they know it).
 */
#include "mpr121.h"

#include "hal.h"

#define REG_TOUCH_STATUS 0x00 /* 0x00-0x01; bit 15 = OVCF */
#define REG_FILTERED 0x04     /* 0x04-0x1B: 12 x 10-bit little-endian */
#define REG_BASELINE 0x1E     /* 0x1E-0x29: 12 x 8 bit (value >> 2) */
#define REG_MHDR 0x2B         /* 0x2B-0x35: baseline filter (rising, falling, touched) */
#define REG_THRESHOLDS 0x41   /* touch, release for each electrode */
#define REG_DEBOUNCE 0x5B
#define REG_CONFIG1 0x5C      /* FFI, CDC */
#define REG_CONFIG2 0x5D      /* CDT, SFI, ESI */
#define REG_ECR 0x5E          /* electrode configuration: run/stop */
#define REG_SOFT_RESET 0x80

#define SCAN_BYTES (REG_BASELINE + MPR121_PADS) /* 0x00..0x29 in one burst */

uint8_t mpr121_begin(uint8_t addr, uint8_t n_pads, uint8_t touch_threshold, uint8_t release_threshold)
{
    static const uint8_t filter[11] = {0x01, 0x01, 0x0E, 0x00, 0x01, 0x05, 0x01, 0x00, 0x00, 0x00, 0x00};
    uint8_t v;
    if (n_pads > MPR121_PADS)
        n_pads = MPR121_PADS;
    if (hal_i2c_write_reg(addr, REG_SOFT_RESET, 0x63))
        return 1;
    hal_delay_ms(1);
    if (hal_i2c_write_reg(addr, REG_ECR, 0x00)) /* stop mode: registers are writable */
        return 1;
    /* After a soft reset CONFIG2 reads 0x24: the cheapest "is this really an MPR121". */
    if (hal_i2c_read_regs(addr, REG_CONFIG2, &v, 1))
        return 1;
    if (v != 0x24)
        return 2;
    for (uint8_t i = 0; i < MPR121_PADS; i++) {
        if (hal_i2c_write_reg(addr, (uint8_t)(REG_THRESHOLDS + 2 * i), touch_threshold) ||
            hal_i2c_write_reg(addr, (uint8_t)(REG_THRESHOLDS + 2 * i + 1), release_threshold))
            return 1;
    }
    for (uint8_t i = 0; i < sizeof filter; i++)
        if (hal_i2c_write_reg(addr, (uint8_t)(REG_MHDR + i), filter[i]))
            return 1;
    if (hal_i2c_write_reg(addr, REG_DEBOUNCE, 0x00) ||
        hal_i2c_write_reg(addr, REG_CONFIG1, 0x10) ||   /* 6 samples first filter, 16 uA */
        hal_i2c_write_reg(addr, REG_CONFIG2, 0x20) ||   /* 0.5 us charge, 4 samples, 1 ms period */
        /* run: baseline tracking on, initial baseline = first 5 readings (CL=10), n electrodes */
        hal_i2c_write_reg(addr, REG_ECR, (uint8_t)(0x80 | n_pads)))
        return 1;
    return 0;
}

uint8_t mpr121_read(uint8_t addr, uint8_t n_pads, mpr121_reading *r)
{
    uint8_t buf[SCAN_BYTES];
    if (n_pads > MPR121_PADS)
        n_pads = MPR121_PADS;
    if (hal_i2c_read_regs(addr, REG_TOUCH_STATUS, buf, SCAN_BYTES))
        return 1;
    uint16_t status = (uint16_t)(buf[0] | (buf[1] << 8));
    r->overcurrent = (status & 0x8000) ? 1 : 0;
    r->touched = status & (uint16_t)((1u << n_pads) - 1);
    for (uint8_t i = 0; i < n_pads; i++) {
        r->raw[i] = (uint16_t)((buf[REG_FILTERED + 2 * i] | (buf[REG_FILTERED + 2 * i + 1] << 8)) & 0x3FF);
        r->baseline[i] = (uint16_t)(buf[REG_BASELINE + i] << 2);
    }
    return 0;
}
