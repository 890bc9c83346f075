"""The `dpo-score` command line and its demo."""
