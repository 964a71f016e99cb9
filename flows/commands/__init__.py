"""The `shelfcast` commands, one module per area; `flows/cli.py` parses and dispatches."""
