"""Board detection from the device tree model, and the board tables."""
import pytest

from lanthorn.errors import UserError
from lanthorn.hardware.board import BOARDS, UnsupportedBoard, board_from_model, detect_board


@pytest.mark.parametrize("model, board", [
    ("Raspberry Pi 4 Model B Rev 1.4\x00", "pi4"),
    ("Raspberry Pi 400 Rev 1.0\x00", "pi4"),
    ("Raspberry Pi Compute Module 4 Rev 1.1\x00", "pi4"),
    ("Raspberry Pi 5 Model B Rev 1.0\x00", "pi5"),
    ("NVIDIA Jetson Orin Nano Developer Kit\x00", "jetson-orin-nano"),
    ("NVIDIA Jetson Orin Nano Engineering Reference Developer Kit Super\x00", "jetson-orin-nano"),
])
def test_detects_supported_boards(tmp_path, model, board):
    path = tmp_path / "model"
    path.write_bytes(model.encode())
    assert detect_board(path) == board


@pytest.mark.parametrize("model", ["Raspberry Pi 3 Model B Plus Rev 1.3", "NVIDIA Jetson Nano Developer Kit",
                                   "Pine64 RockPro64"])
def test_unsupported_board_lists_supported_and_suggests_sim(model):
    with pytest.raises(UnsupportedBoard) as err:
        board_from_model(model)
    msg = str(err.value)
    assert model in msg and "--sim" in msg and "--profile" in msg
    assert "Raspberry Pi 4" in msg and "Raspberry Pi 5" in msg and "Jetson Orin Nano" in msg
    assert isinstance(err.value, UserError)


def test_no_device_tree_is_a_clear_error(tmp_path):
    with pytest.raises(UnsupportedBoard, match="--sim"):
        detect_board(tmp_path / "missing")


def test_gpio_library_per_board():
    assert (BOARDS["pi4"].gpio_module, BOARDS["pi4"].gpio_package) == ("RPi.GPIO", "RPi.GPIO")
    # rpi-lgpio provides the RPi.GPIO module on the Pi 5
    assert (BOARDS["pi5"].gpio_module, BOARDS["pi5"].gpio_package) == ("RPi.GPIO", "rpi-lgpio")
    assert BOARDS["jetson-orin-nano"].gpio_module == "Jetson.GPIO"


def test_pin_tables():
    pi = BOARDS["pi4"]
    assert pi.numbering == "BCM" and 18 in pi.gpio_pins and 0 not in pi.gpio_pins and 28 not in pi.gpio_pins
    assert pi.physical_pin(18) == 12 and pi.physical_pin(10) == 19 and pi.physical_pin(4) == 7
    assert pi.describe_pin(18) == "GPIO18 (header pin 12)"
    jet = BOARDS["jetson-orin-nano"]
    assert jet.numbering == "BOARD" and 7 in jet.gpio_pins and 3 not in jet.gpio_pins  # 3 is I2C SDA
    assert jet.buses.i2c[7] == {"SDA": 3, "SCL": 5}
    assert BOARDS["pi5"].led_drivers == ("spi",)  # no rpi_ws281x PWM on the RP1
