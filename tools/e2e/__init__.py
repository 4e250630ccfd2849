"""The real-cloud end-to-end run (`.github/workflows/e2e.yml`, docs/e2e.md): its stack, budget and phase record."""
