"""Board support: one small module per FPGA board (platform, clock, reset, UART pins)."""
