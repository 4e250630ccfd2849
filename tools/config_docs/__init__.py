"""`python -m tools.config_docs`: the config table of docs/config.md and the stack files' JSON Schema,
both generated from the one declaration (components/config/model.py); tests/test_config_docs.py fails
when either differs from what this writes."""
