"""The small core shapes the tests share: small enough to simulate in seconds, large enough that
GEMMs span several tiles in each dimension."""

from hw.params import RillParams

__all__ = ["SMALL", "SMALL_SHALLOW", "TINY"]

#: A 4x4 array with 256-deep SRAMs: the host-side and RTL tests' common core. Two ADD lanes:
#: a word's eight lanes in four groups, the fewest that read the next word during a word's.
SMALL = RillParams(rows=4, cols=4, act_depth=256, weight_depth=256, acc_depth=256,
                   qparam_depth=64, add_lanes=2)

#: :data:`SMALL` with 128-deep SRAMs and 16 qparam entries and no vector unit: the link tests'
#: core (the link's behaviour does not depend on it, and its builds are smaller without).
SMALL_SHALLOW = RillParams(rows=4, cols=4, act_depth=128, weight_depth=128, acc_depth=128,
                           qparam_depth=16, vector_unit=False)

#: A 2x3 array (rows unlike columns) with 64-deep SRAMs: quick in Amaranth's simulator.
TINY = RillParams(rows=2, cols=3, act_depth=64, weight_depth=64, acc_depth=64, qparam_depth=16)
