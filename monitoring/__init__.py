"""Drift checks (Evidently), forecast quality of released models, alert rules, notifications."""
