"""cocotb testbench modules, launched through ``sim.runner`` (not collected by pytest)."""
