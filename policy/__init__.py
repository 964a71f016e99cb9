"""The product's decisions as pure functions on typed records (`policy.records`): the gate verdict,
the night's summary. No I/O, no Prefect, no database, no TensorFlow: tasks, commands and the service
load what a decision needs, call it, and store what it returns."""
