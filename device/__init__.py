"""lanthorn.device: the on-device runtime (int8 engine, loop, behaviour, console server, storage).

Runs on a small offline computer: imports only the standard library, numpy and
``lanthorn.hardware`` at import time.
"""
