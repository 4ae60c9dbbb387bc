"""lanthorn.hardware: the object's body: part interfaces, real drivers, simulated parts, profiles.

Imports only the standard library and numpy at import time; board libraries (RPi.GPIO,
smbus2, luma.oled, rpi_ws281x, ...) are imported lazily by the backend that needs them.
"""
