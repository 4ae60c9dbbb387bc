"""Shared helpers for the exactness tests; they live in :mod:`lanthorn.quantize.ort_oracle`
(also used by ``lanthorn bench``)."""
from lanthorn.quantize.ort_oracle import assert_exact, ort_raw_int8, ort_session, quantize_feed, to_ours  # noqa: F401
