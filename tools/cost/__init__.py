"""`python -m tools.cost`: a monthly estimate of what a stack's declared resources cost (docs/cost.md)."""
