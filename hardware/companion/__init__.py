"""Microcontroller companion backend: pads and LED ring over a serial link (firmware/)."""
