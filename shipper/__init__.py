"""Shipper agent: tail inputs, remember offsets, push records onto the broker."""
