"""The FPGA build flow: from a board (:mod:`boards`) to a bitstream and its report.

It sits above the gateware and the boards, which know nothing of it. :mod:`flow.build` runs Yosys
and nextpnr on a board's top and reports utilization and Fmax; :mod:`flow.seeds` keeps the best of
several placements; :mod:`flow.progress` shows the tools' progress; :mod:`flow.cli` is the command
line; :mod:`flow.breakdown` counts a board's cells block by block. Users run
``python -m hw.build`` and ``python -m hw.breakdown``: thin entries in :mod:`hw` that import this
package only when they run (``python -m flow.cli`` and ``python -m flow.breakdown`` are the same).
"""
