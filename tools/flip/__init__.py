"""Progressive flip of a stack's traffic between clusters (`python -m tools.flip`; docs/flip.md)."""
