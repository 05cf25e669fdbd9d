"""Simulation: Verilog conversion, the cocotb runner, testbenches, the co-simulation bridge."""
