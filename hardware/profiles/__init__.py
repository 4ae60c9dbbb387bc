"""The shipped hardware profiles (``*.toml``), one per supported body.

A package only so that setuptools ships the TOML files in the wheel and the sdist as package
data; :mod:`lanthorn.hardware.profile` finds them next to this file.
"""
