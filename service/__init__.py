"""`shelfcast serve`: the HTTP service (the device API, the release channel; later the ops
console). Reads and writes through `storage/`; never imports TensorFlow or Prefect."""
