"""Pictures and reports of datasets and results (contact sheets of overlays, ...)."""
