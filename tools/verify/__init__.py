"""The `verify` command (see cli.py): check a deployed mesh from its API servers."""
