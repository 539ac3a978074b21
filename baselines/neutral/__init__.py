"""Neutral baseline: audio-to-expression regression with no style input, VAST's renderer."""
