"""`shelfcast serve`: the HTTP service (the device API, the release channel and the ops console).
Reads and writes through `storage/`; never imports TensorFlow or Prefect."""
