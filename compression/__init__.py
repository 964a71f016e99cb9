"""Windows, the LSTM family, sizing, pruning, quantization and evaluation on LiteRT.

Modules that need TensorFlow import it themselves; importing this package does not.
"""
