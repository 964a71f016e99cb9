"""The store-device agent: numpy, the LiteRT runtime and signature checks, nothing else."""
