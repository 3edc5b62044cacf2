"""Algorithm packages: manifests, archives, sources, the code store and the catalog of versions."""
