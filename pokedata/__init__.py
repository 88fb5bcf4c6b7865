"""pokedata: acquisition and curation of a labelled Pokemon image dataset.

Stages (each a module with a narrow contract):
catalog -> fetch (sources -> downloader -> store + ledger) -> clean / dedup -> manifest.
Heavy third-party imports (requests, ddgs, imagehash) are done lazily inside the stages,
so ``import pokedata`` stays cheap and works where only the training side is installed.
"""

from pokedata.errors import UserError

__all__ = ["UserError"]
__version__ = "0.1.0"
