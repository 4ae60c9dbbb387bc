/* MPR121 12-pad capacitive touch controller over I2C (datasheet: NXP MPR121, Rev. 4). */
#ifndef LANTHORN_MPR121_H
#define LANTHORN_MPR121_H
#include <stdint.h>

#define MPR121_ADDR 0x5A /* ADDR pin to GND */
#define MPR121_PADS 12

typedef struct {
    uint16_t touched;                 /* bit i: pad i touched (chip thresholds) */
    uint8_t overcurrent;              /* OVCF: an electrode is shorted */
    uint16_t raw[MPR121_PADS];        /* filtered data, 10 bit */
    uint16_t baseline[MPR121_PADS];   /* baseline, 8 bit register << 2 */
} mpr121_reading;

/* Reset and configure the chip for n pads with the given thresholds. 0 on success,
 * 1 if nothing answers at addr, 2 if something answers that is not an MPR121. */
uint8_t mpr121_begin(uint8_t addr, uint8_t n_pads, uint8_t touch_threshold, uint8_t release_threshold);
/* One scan in a single 42-byte burst read. 0 on success. */
uint8_t mpr121_read(uint8_t addr, uint8_t n_pads, mpr121_reading *r);
#endif
