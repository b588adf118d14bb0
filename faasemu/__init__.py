"""faasemu: emulate serverless platforms locally and check handlers for idempotency and order tolerance.

Kept import-free on purpose: worker processes import `faasemu.workers.entry`, which must load
nothing beyond the standard library.
"""

__version__ = "0.1.0"
