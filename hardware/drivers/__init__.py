"""Real backends for the part interfaces, one module per chip or LED/display driver.

Each imports its hardware library (smbus2, spidev, rpi_ws281x, luma.oled,
adafruit_vl53l0x) inside its constructor, so this package imports with numpy alone, and
each accepts an already open bus object so tests can drive it at register level.
"""
