"""Export a trained Keras LSTM to a small `.tflite` file that stock LiteRT runs.

The route (the direct ones fail on Keras 3: `from_keras_model` and `export()` both stop on
`tf.TensorListReserve` needing a static element shape): rebuild the forward pass
as a batch-1 `tf.function` whose LSTM is a function tagged like the legacy
Keras `standard_lstm` (``api_implements="lstm_*"``), save it as a SavedModel,
and convert. The converter then fuses the LSTM into one built-in
``UNIDIRECTIONAL_SEQUENCE_LSTM`` op, which is far smaller than a WHILE loop or
an unrolled graph. Window scaling (mean + 1) and the weekday's one-hot are inside the
graph: the file takes 14 raw daily sales, the forecast day's weekday (int32, 0 = Monday) and
the 5 static inputs of input contract 3 (`device/features.py`), and returns next-day sales.

INT8: the converter's dynamic-range quantizer leaves the fused op's weights
in float (measured: same bytes). So `quantize_weights_int8` rewrites the
flatbuffer itself: every LSTM gate matrix and the Dense kernel become int8
with a symmetric per-tensor scale. LiteRT then runs the op in its hybrid mode
(int8 weights, float activations). Biases stay float, as the kernel requires.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as tfl_schema
from tensorflow.lite.tools import flatbuffer_utils

from compression.windows import STATIC_FIELDS, WEEKDAYS, WINDOW_DAYS


def _fused_lstm_function():
    """A tf.function the TFLite converter replaces with UNIDIRECTIONAL_SEQUENCE_LSTM.

    Its signature and outputs follow the legacy Keras `standard_lstm` (inputs,
    init_h, init_c, kernel, recurrent_kernel, bias) -> (last_output, outputs,
    h, c, runtime); the body is the reference LSTM (gates i, f, c, o) used to
    trace it and to check the fused op against.
    """

    def standard_lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
        h, c = init_h, init_c
        outputs = []
        for x in tf.unstack(inputs, axis=1):
            z = tf.matmul(x, kernel) + tf.matmul(h, recurrent_kernel) + bias
            i, f, g, o = tf.split(z, 4, axis=1)
            c = tf.sigmoid(f) * c + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            outputs.append(h)
        return h, tf.stack(outputs, axis=1), h, c, tf.constant(1.0)

    return tf.function(
        standard_lstm,
        autograph=False,
        experimental_attributes={
            "api_implements": f"lstm_{uuid.uuid4()}",
            "api_preferred_device": "CPU",
            "time_major": False,
            "go_backwards": False,
        },
    )


def _serving_function(model: keras.Model, window_days: int):
    kernel, recurrent_kernel, bias = (tf.constant(w) for w in model.get_layer("lstm").get_weights())
    dense = model.get_layer("dense")
    dense_kernel, dense_bias = (tf.constant(w) for w in dense.get_weights())
    # a model trained for counts forecasts exp() of the Dense output (lstm.OUTPUT_ACTIVATION)
    link = tf.exp if dense.activation is keras.activations.exponential else tf.identity
    units = int(recurrent_kernel.shape[0])
    lstm = _fused_lstm_function()

    @tf.function(input_signature=[
        tf.TensorSpec([1, window_days], tf.float32, name="history"),
        tf.TensorSpec([1], tf.int32, name="weekday"),
        tf.TensorSpec([1, len(STATIC_FIELDS)], tf.float32, name="static")])
    def forecast(history, weekday, static):
        scale = tf.reduce_mean(history, axis=1, keepdims=True) + 1.0  # = windows.window_scale
        zeros = tf.zeros([1, units])
        # the static inputs beside the scaled sales at every step (lstm.build_lstm)
        steps = tf.concat([tf.expand_dims(history / scale, -1),
                           tf.tile(tf.expand_dims(static, 1), [1, window_days, 1])], axis=2)
        last, _, _, _, _ = lstm(steps, zeros, zeros, kernel, recurrent_kernel, bias)
        joined = tf.concat([last, tf.one_hot(weekday, WEEKDAYS, dtype=tf.float32), static],
                           axis=1)
        return {"forecast": link(tf.matmul(joined, dense_kernel) + dense_bias) * scale}

    return forecast


def quantize_weights_int8(model_content: bytes) -> bytes:
    """Rewrite float32 weights of the fused LSTM and Dense ops as symmetric per-tensor int8."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(model_content))
    for subgraph in model.subgraphs:
        for op in subgraph.operators:
            name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
            if name == "UNIDIRECTIONAL_SEQUENCE_LSTM":
                weight_inputs = list(op.inputs[1:9])  # input-to-gate and recurrent matrices
            elif name == "FULLY_CONNECTED":
                weight_inputs = [op.inputs[1]]
            else:
                continue
            for tensor_index in weight_inputs:
                if tensor_index < 0:
                    continue
                tensor = subgraph.tensors[tensor_index]
                buffer = model.buffers[tensor.buffer]
                if tensor.type != tfl_schema.TensorType.FLOAT32 or buffer.data is None:
                    continue
                weights = np.frombuffer(bytes(buffer.data), dtype="<f4")
                scale = float(np.abs(weights).max()) / 127.0 or 1.0
                quantized = np.clip(np.round(weights / scale), -127, 127).astype(np.int8)
                buffer.data = np.frombuffer(quantized.tobytes(), dtype=np.uint8)
                tensor.type = tfl_schema.TensorType.INT8
                params = tfl_schema.QuantizationParametersT()
                params.scale, params.zeroPoint = [scale], [0]
                tensor.quantization = params
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


@contextlib.contextmanager
def _native_stderr_captured() -> Iterator[None]:
    """Hold back what the converter's C++ code logs to file descriptor 2 (hundreds of lines a
    night; TF_CPP_MIN_LOG_LEVEL does not reach it), and show it if the conversion fails."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace")[-20_000:])
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def export_tflite(model: keras.Model, *, weights: str = "float32",
                  window_days: int = WINDOW_DAYS) -> bytes:
    """The deployable `.tflite` bytes of `model` (float32 or int8 weights), names stripped."""
    if weights not in ("float32", "int8"):
        raise ValueError(f"weights must be 'float32' or 'int8', got {weights!r}")
    forecast = _serving_function(model, window_days)
    with tempfile.TemporaryDirectory(prefix="shelfcast-export-") as tmp:
        module = tf.Module()
        module.forecast = forecast
        saved = Path(tmp) / "saved_model"
        tf.saved_model.save(module, str(saved),
                            signatures={"serving_default": forecast.get_concrete_function()})
        with _native_stderr_captured():
            converted = tf.lite.TFLiteConverter.from_saved_model(str(saved)).convert()
    flat = flatbuffer_utils.convert_bytearray_to_object(bytearray(converted))
    ops = {flatbuffer_utils.opcode_to_name(flat, op.opcodeIndex)
           for subgraph in flat.subgraphs for op in subgraph.operators}
    if "UNIDIRECTIONAL_SEQUENCE_LSTM" not in ops:
        raise RuntimeError(f"the converter did not fuse the LSTM (ops: {sorted(ops)})")
    flatbuffer_utils.strip_strings(flat)
    content = bytes(flatbuffer_utils.convert_object_to_bytearray(flat))
    return quantize_weights_int8(content) if weights == "int8" else content
