"""The serial console: the server that dispatches lines, its wire protocol, what it may ask of the piece, and its command groups (parameters, recording, push, the PIN lock)."""
