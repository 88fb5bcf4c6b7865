"""Acquisition: sources plan candidates into the ledger; the downloader / importers fill them in.

Contracts:
- a *source* (danbooru, dump, ddg, folder) turns a query into :class:`pokedata.ledger.Candidate` rows
  and calls ``Ledger.plan``; it never writes files;
- the *downloader* (``pokedata.fetch.download``) drains ``planned`` rows over HTTP into temp files;
- :func:`pokedata.fetch.intake.commit_file` is the one gate into ``raw/``: verify, dedup by sha256,
  atomic rename, ledger update. Local copies (folder import, dump mirrors) go through it too.
"""
