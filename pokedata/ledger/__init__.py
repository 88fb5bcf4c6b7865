"""The ledger: ``ledger.sqlite`` in the dataset directory, the single truth about every candidate image.

- :mod:`pokedata.ledger.core`: the schema, :class:`Ledger` (the ``items`` table: plan, mark, select),
  ``meta`` key/values, read-only connections;
- :mod:`pokedata.ledger.images`: the ``images`` and ``hashes`` tables, as clean and dedup write them;
- :mod:`pokedata.ledger.views`: what status, the manifest, the report and the demo read, and the one
  *kept* rule (:data:`pokedata.ledger.views.KEPT_RULES`).

No SQL lives outside this package.
"""

from pokedata.ledger.core import (
    DONE,
    FAILED,
    PLANNED,
    QUARANTINED,
    SCHEMA_VERSION,
    SKIPPED,
    STATUSES,
    Candidate,
    Item,
    Ledger,
    connect_readonly,
    has_table,
)

__all__ = [
    "DONE", "FAILED", "PLANNED", "QUARANTINED", "SCHEMA_VERSION", "SKIPPED", "STATUSES", "Candidate", "Item",
    "Ledger", "connect_readonly", "has_table",
]  # fmt: skip
