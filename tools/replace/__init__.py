"""`python -m tools.replace`: replace one cluster of the mesh by a successor (docs/replace.md)."""
