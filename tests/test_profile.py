"""Hardware profiles: the shipped ones load, and every mistake gets a specific message."""
import copy
import tomllib

import pytest

from lanthorn.errors import UserError
from lanthorn.hardware.profile import PROFILE_DIR, ProfileError, load_profile, parse_profile, shipped_profiles


def base(name="pi4"):
    return tomllib.loads((PROFILE_DIR / f"{name}.toml").read_text())


def error_of(data) -> str:
    with pytest.raises(ProfileError) as err:
        parse_profile(data, source="test.toml")
    assert isinstance(err.value, UserError)
    return str(err.value)


def test_shipped_profiles_load_with_the_default_piece():
    assert set(shipped_profiles()) >= {"pi4", "pi5", "jetson-orin-nano", "sim"}
    for name in ("pi4", "pi5", "jetson-orin-nano", "sim"):
        p = load_profile(name)
        assert p.board == name
        assert p.touch.type == "mpr121" and p.touch.address == 0x5A and p.touch.pads == 12
        assert p.distance.type == "vl53l0x" and p.distance.address == 0x29
        assert p.light.type in ("bh1750", "veml7700")
        assert p.leds.count == 24 and p.leds.order == "GRB"
        assert (p.display.width, p.display.height, p.display.address) == (128, 64, 0x3C)
        assert p.led_cap_ma <= p.supply_ma
    assert load_profile("sim").backend == "sim" and load_profile("pi4").backend == "real"
    assert load_profile("pi4").leds.driver == "pwm" and load_profile("pi5").leds.driver == "spi"
    assert load_profile("jetson-orin-nano").i2c_bus == 7


def test_load_by_path_and_defaults(tmp_path):
    f = tmp_path / "mine.toml"
    f.write_text('board = "pi5"\n[parts.touch]\ntype = "mpr121"\n')
    p = load_profile(f)
    assert p.touch.address == 0x5A and p.touch.bus == 1 and p.touch.touch_threshold == 12
    assert p.leds is None and p.name == "mine"


def test_unknown_name_and_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ProfileError, match="no shipped profile named 'pi3'.*pi4"):
        load_profile("pi3")
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("board = pi4\n")
    with pytest.raises(ProfileError, match="bad.toml: not valid TOML.*line 1"):
        load_profile(bad)


def test_unknown_keys_suggest_the_right_one():
    d = base()
    d["parts"]["touch"]["adress"] = 0x5A
    assert "[parts.touch]: unknown key 'adress' (did you mean 'address'?)" in error_of(d)
    d = base()
    d["colour"] = "red"
    assert "top level: unknown key 'colour'" in error_of(d)
    d = base()
    d["parts"]["lights"] = {"type": "bh1750"}
    assert "unknown key 'lights' (did you mean 'light'?)" in error_of(d)
    d = base()
    d["power"]["supply_mA"] = 1
    assert "[power]: unknown key 'supply_mA'" in error_of(d)


def test_unknown_board_and_part_type():
    d = base()
    d["board"] = "pi3"
    msg = error_of(d)
    assert "unknown board 'pi3'" in msg and "pi4" in msg and "jetson-orin-nano" in msg
    d = base()
    d["parts"]["light"]["type"] = "tsl2561"
    assert "unknown type 'tsl2561' for light (supported: bh1750, veml7700)" in error_of(d)
    d = base()
    del d["parts"]["touch"]["type"]
    assert "[parts.touch]: missing 'type'" in error_of(d)


def test_duplicate_i2c_address_names_both_parts():
    d = base()
    d["parts"]["display"]["address"] = 0x5A
    msg = error_of(d)
    assert "'touch' (mpr121)" in msg and "'display' (ssd1306)" in msg
    assert "0x5a" in msg and "bus 1" in msg
    # the same address on another bus is fine
    d["parts"]["display"]["bus"] = 0
    d["board"] = "sim"
    d["backend"] = "sim"
    assert parse_profile(d).display.bus == 0


def test_unknown_pin_for_the_board():
    d = base()
    d["parts"]["touch"]["irq_pin"] = 40  # a physical pin number, not a BCM GPIO
    msg = error_of(d)
    assert "[parts.touch] irq_pin: pin 40 is not a GPIO on Raspberry Pi 4" in msg and "BCM" in msg
    d = base("jetson-orin-nano")
    d["pins"]["status_led"] = 3  # I2C SDA on the Jetson header
    assert "pin 3 is not a GPIO on NVIDIA Jetson Orin Nano" in error_of(d)


def test_pin_used_twice_or_on_a_bus():
    d = base()
    d["pins"]["status_led"] = 4
    msg = error_of(d)
    assert "GPIO4 (header pin 7) is used twice" in msg and "irq_pin" in msg and "status_led" in msg
    d = base()
    d["parts"]["touch"]["irq_pin"] = 2
    assert "used twice: by I2C bus 1 SDA and by [parts.touch] irq_pin" in error_of(d)
    d = base("pi5")
    d["pins"]["status_led"] = 10
    assert "SPI bus 0 MOSI (leds)" in error_of(d)


def test_power_cap_over_supply_and_missing_budget():
    d = base()
    d["power"]["led_cap_ma"] = 5000
    msg = error_of(d)
    assert "LED power cap 5000 mA is over the supply budget of 3000 mA" in msg
    d = base()
    del d["power"]
    assert "the LEDs need a power budget" in error_of(d)
    d = base()
    d["power"]["led_cap_ma"] = 20  # below 24 pixels' idle draw
    assert "leaves nothing to light 24 pixels" in error_of(d)


def test_required_part_missing():
    d = base()
    del d["parts"]["touch"]
    assert "part 'touch' is required but the profile has no [parts.touch] section" in error_of(d)
    d = base()
    d["required"] = ["touch", "speaker"]
    assert "required: unknown key 'speaker'" in error_of(d)


@pytest.mark.parametrize("where, key, value, expect", [
    ("touch", "address", "0x5A", "address must be an I2C address like 0x5A, not '0x5A'"),
    ("touch", "pads", 13, "pads must be 1..12"),
    ("touch", "release_threshold", 20, "release_threshold must be below touch_threshold"),
    ("touch", "irq_pin", True, "irq_pin must be a GPIO pin number"),
    ("leds", "count", "24", "count must be a number of pixels"),
    ("leds", "order", "GRBW", "order must be a permutation of RGB"),
    ("leds", "brightness", 1.5, "brightness must be between 0 and 1"),
    ("leds", "driver", "bitbang", 'driver must be "pwm" or "spi"'),
    ("leds", "pin", 17, "pin 17 cannot drive WS2812"),
    ("display", "height", 48, "size 128x48 is not an SSD1306 size"),
    ("display", "address", 0x80, "outside the 7-bit I2C range"),
])
def test_bad_values(where, key, value, expect):
    d = base()
    d["parts"][where][key] = value
    assert expect in error_of(d)


def test_bad_bus_and_board_specific_led_driver():
    d = base()
    d["buses"]["i2c"] = -1
    assert "[buses] i2c must be a bus number" in error_of(d)
    d = base("pi5")
    d["parts"]["leds"]["driver"] = "pwm"
    d["parts"]["leds"]["pin"] = 18
    assert "driver 'pwm' does not work on Raspberry Pi 5" in error_of(d)
    d = base("jetson-orin-nano")
    d["buses"]["i2c"] = 3
    assert "I2C bus 3 is not on the NVIDIA Jetson Orin Nano developer kit header" in error_of(d)


def test_missing_required_option():
    d = base()
    del d["parts"]["leds"]["count"]
    assert "[parts.leds]: missing 'count'" in error_of(d)


def test_the_profile_is_read_only():
    p = load_profile("pi4")
    with pytest.raises(TypeError):
        p.parts["touch"].options["address"] = 1
    original = copy.deepcopy(base())
    parse_profile(base())
    assert base() == original


def test_wiring_readme_lists_the_shipped_profiles_pins():
    """hardware/README.md's wiring tables must match the shipped TOML pin for pin."""
    readme = (PROFILE_DIR.parent / "README.md").read_text()
    sections = {"pi4": "## Wiring: Raspberry Pi 4", "pi5": "## Wiring: Raspberry Pi 5",
                "jetson-orin-nano": "## Wiring: Jetson Orin Nano"}
    for name, heading in sections.items():
        body = readme.split(heading, 1)[1].split("\n## ", 1)[0]
        p = load_profile(name)
        b = p.board_info
        label = (lambda pin: f"GPIO{pin}") if b.numbering == "BCM" else (lambda pin: f"BOARD {pin}")
        pins = {"irq": p.touch.irq_pin, "status": p.pins["status_led"]}
        if p.leds.driver == "pwm":
            pins["leds"] = p.leds.pin
        else:
            pins["leds"] = b.buses.spi[p.spi_bus]["MOSI"]
        for what, pin in pins.items():
            row = f"| {b.physical_pin(pin)} | {label(pin)} |"
            assert row in body, f"{name}: README lacks {row} ({what})"
        assert f"/dev/i2c-{p.i2c_bus}" in body
        sda, scl = b.buses.i2c[p.i2c_bus]["SDA"], b.buses.i2c[p.i2c_bus]["SCL"]
        assert f"| {b.physical_pin(sda) or sda} |" in body and f"| {b.physical_pin(scl) or scl} |" in body
        for part in ("touch", "distance", "light", "display"):
            assert f"{p.parts[part].address:#04x}" in readme.lower() or \
                f"0x{p.parts[part].address:02X}" in readme


def test_shipped_companion_profile_routes_pads_and_leds_through_one_link():
    """The Pi 5 + microcontroller companion variant: pads and ring share one USB link,
    distance, light and the OLED stay on the Pi's I2C bus."""
    p = load_profile("pi5-companion")
    assert p.board == "pi5" and p.backend == "real"
    assert p.touch.type == p.leds.type == "companion"
    assert p.parts["touch"].options["port"] == p.parts["leds"].options["port"]
    assert p.leds.count == 24 and p.touch.pads == 12
    assert p.distance.type == "vl53l0x" and p.display.address == 0x3C
    assert p.led_cap_ma <= p.supply_ma
