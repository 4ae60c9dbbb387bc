"""ST LSM6DS3 6-axis accelerometer + gyro over I2C (smbus2): the modern IMU.

Registers from ST's LSM6DS3 datasheet (DocID026899) and the LSM6DS3TR-C one (its current
production version, same registers for what we use):

* WHO_AM_I (0x0F) reads 0x69 (LSM6DS3) or 0x6A (LSM6DS3TR-C); the address is 0x6A with
  SDO/SA0 low, 0x6B high;
* CTRL3_C (0x12): SW_RESET (bit 0) restores the registers; then BDU (bit 6: the high and low
  bytes of an output come from one sample) and IF_INC (bit 2: the register address
  increments in a burst);
* CTRL1_XL (0x10): ODR_XL bits 7:4 (1: 12.5 Hz .. 8: 1.66 kHz; 0: power-down, its reset
  value) and FS_XL bits 3:2 (00: +-2 g, 01: +-16 g, 10: +-4 g, 11: +-8 g); sensitivity 0.061,
  0.122, 0.244, 0.488 mg/LSB;
* CTRL2_G (0x11): ODR_G bits 7:4 and FS_G bits 3:2 (00: 245/250, 01: 500, 10: 1000, 11: 2000
  degrees/s); sensitivity 8.75, 17.5, 35, 70 mdps/LSB (note: not full scale / 32768);
* OUTX_L_G (0x22) .. OUTZ_H_XL (0x2D): 12 bytes, little endian, two's complement: gyro x, y,
  z, then accel x, y, z.
"""
from __future__ import annotations

import time

from .imu_base import IMU, signed16

WHO_AM_I = 0x0F
CTRL1_XL, CTRL2_G, CTRL3_C = 0x10, 0x11, 0x12
OUTX_L_G = 0x22
BURST_LEN = 12
SW_RESET, BDU, IF_INC = 0x01, 0x40, 0x04
ODR = {12.5: 1, 26: 2, 52: 3, 104: 4, 208: 5, 416: 6, 833: 7, 1660: 8}
FS_XL = {2: 0b00, 16: 0b01, 4: 0b10, 8: 0b11}
FS_G = {250: 0b00, 500: 0b01, 1000: 0b10, 2000: 0b11}
MG_PER_LSB = {2: 0.061, 4: 0.122, 8: 0.244, 16: 0.488}
MDPS_PER_LSB = {250: 8.75, 500: 17.5, 1000: 35.0, 2000: 70.0}
RESET_WAIT_S = 0.001


class LSM6DS3(IMU):
    chip = "LSM6DS3"
    who_am_i_register = WHO_AM_I
    who_am_i_values = (0x69, 0x6A)

    def __init__(self, bus=1, address: int = 0x6A, accel_range_g: int = 4,
                 gyro_range_dps: int = 500, sample_rate_hz: float = 104, channels=None,
                 name: str = "imu", sleep=time.sleep):
        super().__init__(bus, address, accel_range_g, gyro_range_dps, sample_rate_hz,
                         channels, name, sleep)

    def _start(self) -> None:
        write = self._bus.write_byte_data
        a = self.address
        self.g_per_count = MG_PER_LSB[self.accel_range_g] / 1000.0
        self.dps_per_count = MDPS_PER_LSB[self.gyro_range_dps] / 1000.0
        odr = ODR[self.sample_rate_hz]
        write(a, CTRL3_C, SW_RESET)
        self._sleep(RESET_WAIT_S)
        write(a, CTRL3_C, BDU | IF_INC)
        write(a, CTRL1_XL, odr << 4 | FS_XL[self.accel_range_g] << 2)
        write(a, CTRL2_G, odr << 4 | FS_G[self.gyro_range_dps] << 2)

    def _burst(self):
        b = self._bus.read_i2c_block_data(self.address, OUTX_L_G, BURST_LEN)
        words = [signed16(b[i + 1], b[i]) for i in range(0, BURST_LEN, 2)]
        return words[3:6], words[0:3]

    def _in_power_on_state(self) -> bool:
        return self._bus.read_byte_data(self.address, CTRL1_XL) == 0  # ODR_XL 0: power-down
