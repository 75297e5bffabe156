"""Convert the Coral MobileNetV2 TFLite file (uint8, batch norm folded) to float safetensors.

    .venv/bin/python scripts/convert_coral_mobilenet.py [--source FILE] [--out FILE]

Reads the flatbuffer with the TFLite schema that `ai-edge-litert` ships (the `convert` extra),
walks its convolutions in graph order, checks each against the matching layer of
`saymap.engine.model.mobilenet_v2.MobileNetV2Classifier` (kind, stride, ReLU6, shape), and
dequantises: weights (q - zero_point) * scale, per channel where the file is, int32 biases
q * input_scale * weight_scale. The result is that module's state dict (trunk `features.*`
plus the classifier head, kept so the test can check top-1), written atomically. Training
runs it through `saymap.training.pretrained.ensure_coral_mobilenet`; inference never does.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from saymap.engine.model.mobilenet_v2 import FoldedConv, MobileNetV2Classifier
from saymap.training.pretrained import CORAL_MOBILENET_FILE, coral_source, default_cache_dir

# The TFLite model's input: real = (q - 128) / 128 (SayMap's `mobile` config normalises so).
INPUT_SCALE, INPUT_ZERO_POINT = 1 / 128, 128
PAD_SAME, RELU6, NO_ACTIVATION = 0, 3, 0  # schema enums: Padding.SAME, ActivationFunctionType


class ConversionError(Exception):
    """The file is not the MobileNetV2 this converter knows; the message says where."""


@dataclass(frozen=True)
class Slot:
    """One convolution of the torch model that a TFLite conv op must fill."""

    key: str  # state-dict prefix: "<key>.weight", "<key>.bias"
    depthwise: bool
    stride: int
    relu6: bool
    weight_shape: tuple[int, ...]


def torch_slots(model: MobileNetV2Classifier) -> list[Slot]:
    """The model's convolutions in execution order (registration order is execution order)."""
    slots = []
    for name, module in model.named_modules():
        if isinstance(module, FoldedConv):
            conv = module.conv
            slots.append(
                Slot(
                    f"{name}.conv",
                    conv.groups > 1,
                    module.stride,
                    module.relu6,
                    tuple(conv.weight.shape),
                )
            )
    head = model.classifier
    slots.append(Slot("classifier", False, 1, False, tuple(head.weight.shape)))
    return slots


def _schema() -> Any:
    try:
        from ai_edge_litert import schema_py_generated
    except ImportError as exc:
        raise ConversionError(
            "the TFLite parser is not installed; run `make setup` (it installs the `convert` "
            "extra) or `.venv/bin/pip install -e '.[convert]'`"
        ) from exc
    return schema_py_generated


def _array(model: Any, graph: Any, index: int, schema: Any) -> np.ndarray:
    tensor = graph.tensors[index]
    dtypes = {
        schema.TensorType.UINT8: np.uint8,
        schema.TensorType.INT8: np.int8,
        schema.TensorType.INT32: np.dtype("<i4"),
    }
    if tensor.type not in dtypes:
        raise ConversionError(f"tensor {tensor.name.decode()!r} has unsupported type {tensor.type}")
    data = model.buffers[tensor.buffer].data
    if data is None:
        raise ConversionError(f"tensor {tensor.name.decode()!r} has no constant data")
    raw = np.asarray(data, dtype=np.uint8).tobytes()
    return np.frombuffer(raw, dtype=dtypes[tensor.type]).reshape(list(tensor.shape))


def _scale(tensor: Any, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point, shaped to broadcast along the quantised axis (per channel)."""
    q = tensor.quantization
    scale = np.asarray(q.scale, dtype=np.float64)
    zero = np.asarray(q.zeroPoint, dtype=np.float64)
    if scale.size > 1:
        shape = [1] * ndim
        shape[q.quantizedDimension] = scale.size
        return scale.reshape(shape), zero.reshape(shape)
    return scale.reshape(()), zero.reshape(())


def _conv_ops(model: Any, schema: Any) -> list[Any]:
    graph = model.subgraphs[0]
    kinds = {schema.BuiltinOperator.CONV_2D, schema.BuiltinOperator.DEPTHWISE_CONV_2D}
    ops = []
    for op in graph.operators:
        code = model.operatorCodes[op.opcodeIndex]
        kind = max(code.builtinCode, code.deprecatedBuiltinCode)
        if kind in kinds:
            ops.append((op, kind == schema.BuiltinOperator.DEPTHWISE_CONV_2D))
    return ops


def _check_input(model: Any) -> None:
    graph = model.subgraphs[0]
    tensor = graph.tensors[graph.inputs[0]]
    q = tensor.quantization
    got = (float(q.scale[0]), int(q.zeroPoint[0]))
    if list(tensor.shape) != [1, 224, 224, 3] or got != (INPUT_SCALE, INPUT_ZERO_POINT):
        raise ConversionError(
            f"input is {list(tensor.shape)} with (scale, zero point) {got}; expected "
            f"[1, 224, 224, 3] with ({INPUT_SCALE}, {INPUT_ZERO_POINT})"
        )


def convert(source: Path) -> dict[str, torch.Tensor]:
    """The float state dict of MobileNetV2Classifier read from the quantised TFLite file."""
    schema = _schema()
    model = schema.ModelT.InitFromPackedBuf(source.read_bytes(), 0)
    _check_input(model)
    graph = model.subgraphs[0]
    slots = torch_slots(MobileNetV2Classifier())
    ops = _conv_ops(model, schema)
    if len(ops) != len(slots):
        raise ConversionError(f"{len(ops)} convolutions in the file, {len(slots)} in the model")
    state: dict[str, torch.Tensor] = {}
    for (op, depthwise), slot in zip(ops, slots, strict=True):
        options = op.builtinOptions
        activation = options.fusedActivationFunction
        found = (depthwise, options.strideH, activation == RELU6)
        if found != (slot.depthwise, slot.stride, slot.relu6) or options.strideW != slot.stride:
            raise ConversionError(f"{slot.key}: file has (depthwise, stride, relu6) {found}")
        if options.padding != PAD_SAME or activation not in (RELU6, NO_ACTIVATION):
            raise ConversionError(f"{slot.key}: padding {options.padding}, act {activation}")
        inputs, weights_index, bias_index = op.inputs
        weight_tensor = graph.tensors[weights_index]
        q = _array(model, graph, weights_index, schema).astype(np.float64)
        scale, zero = _scale(weight_tensor, q.ndim)
        weight = (q - zero) * scale
        # TFLite: conv [O, H, W, I], depthwise [1, H, W, C]; torch: [O, I, H, W], [C, 1, H, W].
        weight = weight.transpose(3, 0, 1, 2) if depthwise else weight.transpose(0, 3, 1, 2)
        if weight.shape != slot.weight_shape:
            raise ConversionError(f"{slot.key}: weight {weight.shape}, model {slot.weight_shape}")
        input_scale = float(graph.tensors[inputs].quantization.scale[0])
        channel_scale = np.broadcast_to(scale.reshape(-1), (slot.weight_shape[0],))
        bias_scale = input_scale * channel_scale
        stored = np.asarray(graph.tensors[bias_index].quantization.scale, dtype=np.float64)
        if not np.allclose(stored, bias_scale, rtol=1e-3):
            raise ConversionError(f"{slot.key}: bias scale is not input scale × weight scale")
        bias = _array(model, graph, bias_index, schema).astype(np.float64) * bias_scale
        state[f"{slot.key}.weight"] = torch.from_numpy(weight.astype(np.float32)).contiguous()
        state[f"{slot.key}.bias"] = torch.from_numpy(bias.astype(np.float32)).contiguous()
    return state


def write(state: dict[str, torch.Tensor], source: Path, out: Path) -> Path:
    """Atomically (temp file, then rename), so two trainers converting at once cannot clash."""
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    metadata = {
        "format": "pt",
        "source": source.name,
        "source_sha256": digest,
        "input": "pixels q in 0..255 -> (q - 128) / 128",
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        Path(tmp).replace(out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=coral_source())
    parser.add_argument("--out", type=Path, default=default_cache_dir() / CORAL_MOBILENET_FILE)
    args = parser.parse_args(argv)
    if not args.source.is_file():
        print(f"convert: no TFLite file at {args.source}", file=sys.stderr)
        return 2
    try:
        state = convert(args.source)
    except ConversionError as exc:
        print(f"convert: {args.source.name}: {exc}", file=sys.stderr)
        return 1
    path = write(state, args.source, args.out)
    n = sum(t.numel() for t in state.values())
    trunk = sum(1 for k in state if k.startswith("features."))
    print(f"wrote {path} ({len(state)} tensors, {trunk} of the trunk; {n:,} float32 values)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
