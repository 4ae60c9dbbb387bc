"""SSD1306 through the real luma.oled, on a fake I2C bus (what goes over the wire)."""
import pytest
from hw_fakes import FakeChip, FakeSMBus, io_error

from lanthorn.hardware.gpio import MockPinFactory
from lanthorn.hardware.interfaces import PartError

pytest.importorskip("luma.oled")
pytestmark = pytest.mark.filterwarnings("ignore:Image.Image.getdata:DeprecationWarning")  # inside luma.oled
from PIL import Image

from lanthorn.hardware.drivers.ssd1306 import Ssd1306


@pytest.fixture
def bus(monkeypatch):
    import smbus2
    fake = FakeSMBus({0x3C: FakeChip()})
    monkeypatch.setattr(smbus2, "SMBus", lambda port: fake)
    return fake


def commands(bus):
    """Command bytes (control byte 0x00) sent to the display, flattened."""
    return [b for data in bus.writes(0x3C) if data[0] == 0x00 for b in data[1:]]


def frame_bytes(bus):
    return b"".join(data[1:] for data in bus.writes(0x3C) if data[0] == 0x40)


def test_init_sends_the_ssd1306_setup(bus):
    Ssd1306(bus=1, address=0x3C)
    cmds = commands(bus)
    assert cmds[0] == 0xAE  # display off first
    assert 0xA8 in cmds and cmds[cmds.index(0xA8) + 1] == 63  # multiplex ratio: 64 rows
    assert 0x8D in cmds and cmds[cmds.index(0x8D) + 1] == 0x14  # charge pump on
    assert 0xAF in cmds  # display on


def test_frame_goes_out_as_1024_bytes_with_pixel_packing(bus):
    oled = Ssd1306(bus=1)
    bus.log.clear()
    img = Image.new("1", (128, 64))
    img.putpixel((0, 0), 1)
    img.putpixel((5, 9), 1)  # page 1, column 5, bit 1
    oled.show(img)
    data = frame_bytes(bus)
    assert len(data) == 1024
    assert data[0] == 0x01 and data[128 + 5] == 0x02 and sum(map(bool, data)) == 2
    bus.log.clear()
    oled.show(Image.new("L", (128, 64), 255))  # any mode is converted to 1-bit
    assert frame_bytes(bus) == b"\xff" * 1024


def test_wrong_size_is_refused(bus):
    with pytest.raises(ValueError, match=r"expected \(128, 64\)"):
        Ssd1306(bus=1).show(Image.new("1", (128, 32)))


def test_missing_display_is_part_error(monkeypatch):
    import smbus2
    monkeypatch.setattr(smbus2, "SMBus", lambda port: FakeSMBus({}))
    with pytest.raises(PartError) as err:
        Ssd1306(bus=1, address=0x3D)
    assert str(err.value).startswith("display: SSD1306 at I2C address 0x3d") and "pull-ups" in str(err.value)


def test_io_error_while_showing(bus):
    oled = Ssd1306(bus=1)
    bus.fail = io_error()
    with pytest.raises(PartError, match="display"):
        oled.show(Image.new("1", (128, 64)))


def test_reset_pin_is_pulsed_before_init(bus):
    pins = MockPinFactory()
    reset = pins.pin(24)
    levels = []
    original = reset.write
    reset.write = lambda v: (levels.append(v), original(v))
    oled = Ssd1306(bus=1, reset=reset)
    assert reset.mode == "out" and levels == [0, 1] and reset.read()
    oled.close()
    assert 24 not in pins.pins
