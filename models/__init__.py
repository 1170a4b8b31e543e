"""Sequence-to-sequence models and decoding, built on minigrad (see README.md)."""
