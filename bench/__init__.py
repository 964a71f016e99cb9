"""Benchmarks: the commands behind `shelfcast bench ...`, each printing its figures and writing
them to a folder. Above every package but the CLI; nothing else imports them."""
