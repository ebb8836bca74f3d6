"""Aligned faces to L2-normalised embeddings with onnxruntime on the CPU.

Batching: when the model file has a fixed batch dimension of 1 (the MobileFaceNet test file does, and
its flatten is a `Reshape` to the constant `[1, -1]`), the graph is edited in memory with `onnx` so the
batch is dynamic: the input and output batch dims become symbolic and a leading 1 in a `Reshape` shape
constant becomes 0 ("copy the input dim"). A batch is then one `run()`, not a loop. Because such an edit
rests on the shape of the graph, the session is checked at load: a batch of two must give the same
vectors as two single runs, otherwise loading fails with a clear error.
"""

from collections.abc import Sequence

import cv2
import numpy as np
import onnx
import onnxruntime as ort
from numpy.typing import NDArray
from onnx import numpy_helper

from edge.detector import Image
from edge.models import ColourOrder, EmbedderSpec, ModelPackError, ResolvedModel

Vectors = NDArray[np.float32]


def make_batch_dynamic(model: onnx.ModelProto) -> bool:
    """Turn a fixed batch of 1 into a dynamic one, in place; True if anything changed."""
    changed = False
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == 1:
            dims[0].dim_param = "batch"
            changed = True
    if changed:
        del model.graph.value_info[:]  # inferred intermediate shapes still say 1
        _free_reshape_batch(model)
    return changed


def _free_reshape_batch(model: onnx.ModelProto) -> None:
    """Rewrite `Reshape` shape constants `[1, ...]` as `[0, ...]` so the batch passes through."""
    reshape_shapes = {node.input[1] for node in model.graph.node if node.op_type == "Reshape"}
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] in reshape_shapes:
            _zero_leading_one(node.attribute[0].t)
    for initializer in model.graph.initializer:
        if initializer.name in reshape_shapes:
            _zero_leading_one(initializer)


def _zero_leading_one(tensor: onnx.TensorProto) -> None:
    shape = numpy_helper.to_array(tensor).copy()
    if shape.ndim == 1 and shape.size > 1 and shape[0] == 1:
        shape[0] = 0
        tensor.CopyFrom(numpy_helper.from_array(shape, tensor.name))


def l2_normalise(vectors: NDArray[np.floating]) -> Vectors:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.maximum(norms, 1e-12), dtype=np.float32)


class OnnxEmbedder:
    """An embedder of the registry on onnxruntime's CPUExecutionProvider."""

    def __init__(self, model: ResolvedModel, intra_op_threads: int, max_batch: int) -> None:
        if not isinstance(model.spec, EmbedderSpec):
            raise ModelPackError(f"{model.spec.name} is not an embedder")
        self.spec: EmbedderSpec = model.spec
        self.model_id = model.model_id
        self._max_batch = max_batch
        graph = onnx.load(str(model.path))
        make_batch_dynamic(graph)
        options = ort.SessionOptions()
        options.intra_op_num_threads = intra_op_threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            graph.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._check_batching()

    def embed(self, faces: Sequence[Image]) -> Vectors:
        """One L2-normalised float32 row per aligned BGR face, in the order given."""
        if not faces:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        chunks = [self._run(faces[i : i + self._max_batch]) for i in range(0, len(faces), self._max_batch)]
        return l2_normalise(np.concatenate(chunks))

    def _run(self, faces: Sequence[Image]) -> NDArray[np.float32]:
        output = self._session.run(None, {self._input: self._blob(faces)})[0]
        vectors = np.asarray(output, dtype=np.float32).reshape(len(faces), -1)
        if vectors.shape[1] != self.spec.dim:
            raise ModelPackError(
                f"{self.spec.name} returned {vectors.shape[1]}-d vectors, registry says {self.spec.dim}"
            )
        return vectors

    def _blob(self, faces: Sequence[Image]) -> NDArray[np.float32]:
        size = self.spec.input_size
        pixels = np.stack([cv2.resize(face, (size, size)) if face.shape[0] != size else face for face in faces])
        if self.spec.colour is ColourOrder.RGB:
            pixels = pixels[..., ::-1]
        normalised = (pixels.astype(np.float32) - self.spec.mean) / self.spec.std
        return np.ascontiguousarray(normalised.transpose(0, 3, 1, 2))

    def _check_batching(self) -> None:
        size = self.spec.input_size
        rng = np.random.default_rng(0)
        faces = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(2)]
        together = self._run(faces)
        alone = np.concatenate([self._run([face]) for face in faces])
        if not np.allclose(together, alone, atol=1e-3):
            raise ModelPackError(f"{self.spec.name}: batched inference differs from single runs; cannot batch it")
