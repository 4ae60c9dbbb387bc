"""MPU-6050 and LSM6DS3 drivers at register level against fake I2C chips."""
from __future__ import annotations

import pytest
from hw_fakes import FakeChip, FakeSMBus, io_error
from hw_fakes_channels import FakeLSM6DS3, FakeMPU6050

from lanthorn.hardware.drivers.lsm6ds3 import LSM6DS3
from lanthorn.hardware.drivers.mpu6050 import MPU6050
from lanthorn.hardware.interfaces import PartError

NO_WAIT = lambda s: None  # noqa: E731  (the reset waits are real sleeps otherwise)


def mpu(address=0x68, **kwargs):
    chip = FakeMPU6050()
    bus = FakeSMBus({address: chip})
    return MPU6050(bus, address, sleep=NO_WAIT, **kwargs), chip, bus


def lsm(address=0x6A, **kwargs):
    chip = FakeLSM6DS3()
    bus = FakeSMBus({address: chip})
    return LSM6DS3(bus, address, sleep=NO_WAIT, **kwargs), chip, bus


def test_mpu6050_start_up_is_the_register_maps_sequence():
    waits = []
    chip = FakeMPU6050()
    bus = FakeSMBus({0x69: chip})
    MPU6050(bus, 0x69, accel_range_g=8, gyro_range_dps=1000, sample_rate_hz=100, dlpf_hz=44,
            sleep=waits.append)
    assert bus.log[0] == ("w", 0x69, bytes([0x75])) and bus.log[1] == ("r", 0x69, bytes([0x68]))
    assert bus.register_writes(0x69) == [
        (0x6B, 0x80),  # DEVICE_RESET
        (0x6B, 0x01),  # wake, PLL with the X gyro as clock
        (0x1A, 0x03),  # CONFIG: DLPF 44 Hz
        (0x19, 9),  # SMPLRT_DIV: 1 kHz / (1 + 9) = 100 Hz
        (0x1B, 2 << 3),  # GYRO_CONFIG FS_SEL=2: +-1000 dps
        (0x1C, 2 << 3),  # ACCEL_CONFIG AFS_SEL=2: +-8 g
    ]
    assert waits == [0.1] and chip.resets == 1


@pytest.mark.parametrize("accel_g, gyro_dps", [(2, 250), (4, 500), (8, 1000), (16, 2000)])
def test_mpu6050_ranges_scale_counts_to_g_and_dps(accel_g, gyro_dps):
    sensor, chip, bus = mpu(accel_range_g=accel_g, gyro_range_dps=gyro_dps)
    chip.feel((0.5, -1.25, 1.0), (-100.0, 12.5, 200.0))
    ax, ay, az, gx, gy, gz = sensor.read()
    assert (ax, ay, az) == pytest.approx((0.5, -1.25, 1.0), abs=accel_g / 32768 * 1.01)
    assert (gx, gy, gz) == pytest.approx((-100.0, 12.5, 200.0), abs=gyro_dps / 32768 * 1.01 + 0.01)
    # one 14-byte burst from ACCEL_XOUT_H: the six values come from one sample
    assert bus.log[-2:][0] == ("w", 0x68, bytes([0x3B])) and len(bus.log[-1][2]) == 14


def test_mpu6050_decodes_big_endian_twos_complement_and_skips_the_temperature():
    sensor, chip, bus = mpu(accel_range_g=2, gyro_range_dps=250)
    chip.regs[0x3B:0x49] = bytes([0x80, 0x00, 0x7F, 0xFF, 0x40, 0x00, 0x12, 0x34,
                                  0xFF, 0x7D, 0x00, 0x83, 0xFF, 0xFF])
    ax, ay, az, gx, gy, gz = sensor.read()
    assert (ax, ay, az) == (-2.0, 32767 / 16384, 1.0)
    assert (gx, gy, gz) == (-1.0, 1.0, -1 / 131)  # 131 LSB per degree/s at +-250


def test_mpu6050_refuses_another_chip_and_a_missing_one_with_its_address():
    bus = FakeSMBus({0x68: FakeMPU6050(who_am_i=0x70)})  # an MPU-6500
    with pytest.raises(PartError, match=r"not an MPU-6050 \(WHO_AM_I reads 0x70, expected 0x68\)"):
        MPU6050(bus, 0x68, sleep=NO_WAIT)
    with pytest.raises(PartError) as err:
        MPU6050(FakeSMBus({}), 0x69, name="imu", sleep=NO_WAIT)
    assert str(err.value).startswith("imu: no answer at I2C address 0x69") and "pull-ups" in str(err.value)


def test_mpu6050_replugged_is_noticed_and_reinitialised_on_the_next_open():
    sensor, chip, bus = mpu()
    chip.feel((0, 0, 1), (0, 0, 0))
    assert sensor.read()[2] == pytest.approx(1.0, abs=1e-3)
    chip.power_cycle()  # unplugged and back: asleep, registers zero, still answering
    with pytest.raises(PartError, match="power-on state .* re-initialising"):
        sensor.read()
    del bus.devices[0x68]  # while it is away, the bus says so with the address
    with pytest.raises(PartError, match="0x68"):
        sensor.read()
    bus.devices[0x68] = chip
    sensor.close()
    again = MPU6050(bus, 0x68, sleep=NO_WAIT)  # what part health's re-open does
    assert chip.resets == 2 and chip.regs[0x6B] == 0x01
    assert again.read()[2] == pytest.approx(1.0, abs=1e-3)


def test_mpu6050_bus_errors_mid_read_name_the_part():
    sensor, chip, bus = mpu()
    bus.fail = io_error()
    with pytest.raises(PartError, match="imu: no answer at I2C address 0x68"):
        sensor.read()


def test_lsm6ds3_start_up_writes_odr_and_full_scale():
    sensor, chip, bus = lsm(accel_range_g=16, gyro_range_dps=2000, sample_rate_hz=208)
    assert bus.log[0] == ("w", 0x6A, bytes([0x0F])) and bus.log[1] == ("r", 0x6A, bytes([0x69]))
    assert bus.register_writes(0x6A) == [
        (0x12, 0x01),  # CTRL3_C SW_RESET
        (0x12, 0x44),  # BDU + IF_INC
        (0x10, 0x5 << 4 | 0b01 << 2),  # CTRL1_XL: 208 Hz, +-16 g (FS_XL=01)
        (0x11, 0x5 << 4 | 0b11 << 2),  # CTRL2_G: 208 Hz, 2000 dps (FS_G=11)
    ]


@pytest.mark.parametrize("accel_g, gyro_dps", [(2, 250), (4, 500), (8, 1000), (16, 2000)])
def test_lsm6ds3_ranges_use_the_datasheet_sensitivities(accel_g, gyro_dps):
    sensor, chip, bus = lsm(accel_range_g=accel_g, gyro_range_dps=gyro_dps)
    chip.feel((0.25, -0.75, 1.5), (30.0, -200.0, 240.0))
    vals = sensor.read()
    assert vals[:3] == pytest.approx((0.25, -0.75, 1.5), abs=accel_g * 0.0001)
    assert vals[3:] == pytest.approx((30.0, -200.0, 240.0), abs=gyro_dps * 0.0001 + 0.01)
    assert bus.log[-2] == ("w", 0x6A, bytes([0x22])) and len(bus.log[-1][2]) == 12


def test_lsm6ds3_little_endian_gyro_first():
    sensor, chip, bus = lsm(accel_range_g=2, gyro_range_dps=250)
    chip.regs[0x22:0x2E] = bytes([0x00, 0x80, 0x01, 0x00, 0xFF, 0xFF,  # gyro x, y, z
                                  0x00, 0x40, 0x34, 0x12, 0x00, 0x00])  # accel x, y, z
    ax, ay, az, gx, gy, gz = sensor.read()
    assert (gx, gy, gz) == pytest.approx((-32768 * 0.00875, 0.00875, -0.00875))
    assert (ax, ay, az) == pytest.approx((0x4000 * 0.000061, 0x1234 * 0.000061, 0.0))


def test_lsm6ds3_accepts_the_tr_c_and_refuses_others():
    bus = FakeSMBus({0x6B: FakeLSM6DS3(who_am_i=0x6A)})
    LSM6DS3(bus, 0x6B, sleep=NO_WAIT)
    with pytest.raises(PartError, match=r"not an LSM6DS3 \(WHO_AM_I reads 0x6c, expected 0x69 or 0x6a\)"):
        LSM6DS3(FakeSMBus({0x6A: FakeChip({0x0F: 0x6C})}), 0x6A, sleep=NO_WAIT)
    with pytest.raises(PartError, match="no answer at I2C address 0x6b"):
        LSM6DS3(FakeSMBus({}), 0x6B, sleep=NO_WAIT)


def test_lsm6ds3_replugged_is_noticed_and_reinitialised():
    sensor, chip, bus = lsm()
    assert sensor.read()[2] == pytest.approx(1.0, abs=1e-3)
    chip.power_cycle()  # CTRL1_XL back to 0: powered down, outputs zero
    with pytest.raises(PartError, match="LSM6DS3 is in its power-on state"):
        sensor.read()
    again = LSM6DS3(bus, 0x6A, sleep=NO_WAIT)
    assert chip.resets == 2 and again.read()[2] == pytest.approx(1.0, abs=1e-3)
