"""k2forge front doors: the `k2forge` CLI and the REST job service."""
