"""The tests' null-modem cable is the product's (``lanthorn studio --sim`` uses it too)."""
from lanthorn.host.pty_link import PtyLink  # noqa: F401
