"""Test-only helpers: gateware and host pieces the tests need and the product does not ship.

``tests/`` is on ``sys.path`` while pytest runs (it has no ``__init__.py``), so tests import these
as ``support.<module>``.
"""
