"""History: the git adapter (the only module that imports git), the ledger, published versions and the importer."""
