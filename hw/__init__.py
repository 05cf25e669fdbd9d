"""Rill gateware: the accelerator core, described in Amaranth."""
