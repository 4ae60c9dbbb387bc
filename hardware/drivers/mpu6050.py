"""InvenSense MPU-6050 6-axis accelerometer + gyro over I2C (smbus2).

Registers from the MPU-6000/MPU-6050 Register Map (RM-MPU-6000A, rev. 4.2):

* WHO_AM_I (0x75) reads 0x68 whatever AD0 is (the address is 0x68 with AD0 low, 0x69 high);
* PWR_MGMT_1 (0x6B): 0x80 resets every register (the chip then sleeps: 0x40); we write 0x01
  to wake it with the X gyro's PLL as clock, the clock the datasheet recommends;
* CONFIG (0x1A) DLPF_CFG bits 2:0 choose the low-pass filter (0: 260 Hz .. 6: 5 Hz); with
  the filter on, the gyro output rate is 1 kHz and SMPLRT_DIV (0x19) divides it:
  rate = 1000 / (1 + SMPLRT_DIV);
* GYRO_CONFIG (0x1B) FS_SEL bits 4:3: +-250/500/1000/2000 degrees/s (131, 65.5, 32.8, 16.4
  LSB per degree/s); ACCEL_CONFIG (0x1C) AFS_SEL bits 4:3: +-2/4/8/16 g (16384 .. 2048 LSB/g);
* ACCEL_XOUT_H (0x3B) .. GYRO_ZOUT_L (0x48): 14 bytes, big endian, two's complement: accel
  x, y, z, temperature, gyro x, y, z, read in one burst so all six come from one sample.
"""
from __future__ import annotations

import time

from .imu_base import IMU, signed16

SMPLRT_DIV, CONFIG, GYRO_CONFIG, ACCEL_CONFIG = 0x19, 0x1A, 0x1B, 0x1C
ACCEL_XOUT_H = 0x3B
BURST_LEN = 14  # 0x3B..0x48
PWR_MGMT_1 = 0x6B
WHO_AM_I = 0x75
DEVICE_RESET, SLEEP, CLOCK_PLL_XGYRO = 0x80, 0x40, 0x01
RESET_WAIT_S = 0.1  # the register map: wait 100 ms after DEVICE_RESET
DLPF_CFG = {260: 0, 184: 1, 94: 2, 44: 3, 21: 4, 10: 5, 5: 6}
FS_SEL = {250: 0, 500: 1, 1000: 2, 2000: 3}
AFS_SEL = {2: 0, 4: 1, 8: 2, 16: 3}
LSB_PER_DPS = {250: 131.0, 500: 65.5, 1000: 32.8, 2000: 16.4}  # the datasheet's, not 32768/FS
LSB_PER_G = {2: 16384.0, 4: 8192.0, 8: 4096.0, 16: 2048.0}


class MPU6050(IMU):
    chip = "MPU-6050"
    who_am_i_register = WHO_AM_I
    who_am_i_values = (0x68,)

    def __init__(self, bus=1, address: int = 0x68, accel_range_g: int = 4,
                 gyro_range_dps: int = 500, sample_rate_hz: float = 100, dlpf_hz: int = 44,
                 channels=None, name: str = "imu", sleep=time.sleep):
        self.dlpf_hz = int(dlpf_hz)
        super().__init__(bus, address, accel_range_g, gyro_range_dps, sample_rate_hz,
                         channels, name, sleep)

    def _start(self) -> None:
        write = self._bus.write_byte_data
        a = self.address
        self.g_per_count = 1.0 / LSB_PER_G[self.accel_range_g]
        self.dps_per_count = 1.0 / LSB_PER_DPS[self.gyro_range_dps]
        write(a, PWR_MGMT_1, DEVICE_RESET)
        self._sleep(RESET_WAIT_S)
        write(a, PWR_MGMT_1, CLOCK_PLL_XGYRO)  # out of sleep, PLL clock
        write(a, CONFIG, DLPF_CFG[self.dlpf_hz])
        write(a, SMPLRT_DIV, self.divider)
        write(a, GYRO_CONFIG, FS_SEL[self.gyro_range_dps] << 3)
        write(a, ACCEL_CONFIG, AFS_SEL[self.accel_range_g] << 3)

    @property
    def divider(self) -> int:
        """SMPLRT_DIV for the configured rate (1 kHz gyro output with the filter on)."""
        return min(max(round(1000.0 / self.sample_rate_hz) - 1, 0), 255)

    def _burst(self):
        b = self._bus.read_i2c_block_data(self.address, ACCEL_XOUT_H, BURST_LEN)
        words = [signed16(b[i], b[i + 1]) for i in range(0, BURST_LEN, 2)]
        return words[0:3], words[4:7]  # words[3] is the temperature

    def _in_power_on_state(self) -> bool:
        return bool(self._bus.read_byte_data(self.address, PWR_MGMT_1) & SLEEP)
