"""Rill host software: golden model, quantization, compiler, driver and CLI."""
