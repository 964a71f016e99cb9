"""Evidently drift reports, alert rules, notifications (not built yet)."""
