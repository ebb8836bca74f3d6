"""The model registry: checksums, model ids, and the in-memory batch edit of fixed-batch ONNX graphs."""

import hashlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.embedder import make_batch_dynamic
from edge.models import EMBEDDERS, MODEL_PACK_HINT, ModelFile, ModelPackError, embedder_spec, resolve_model


def test_pinned_file_resolves_to_an_id_with_the_first_8_hex_of_its_sha256(tmp_path):
    content = b"not really onnx"
    digest = hashlib.sha256(content).hexdigest()
    (tmp_path / "m.onnx").write_bytes(content)
    resolved = resolve_model(tmp_path, ModelFile("tiny", "m.onnx", digest))
    assert resolved.model_id == f"tiny@{digest[:8]}"


def test_a_file_with_another_checksum_is_refused(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"tampered")
    with pytest.raises(ModelPackError, match="expected 0000"):
        resolve_model(tmp_path, ModelFile("tiny", "m.onnx", "0" * 64))


def test_an_unpinned_file_is_accepted_and_identified_by_its_actual_checksum(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"abc")
    assert resolve_model(tmp_path, ModelFile("tiny", "m.onnx", None)).model_id == "tiny@ba7816bf"


@pytest.mark.parametrize("missing", ["folder", "file"])
def test_missing_model_says_where_to_get_a_model_pack(tmp_path, missing):
    model_dir = tmp_path / "absent" if missing == "folder" else tmp_path
    with pytest.raises(ModelPackError) as error:
        resolve_model(model_dir, ModelFile("tiny", "m.onnx", None))
    assert MODEL_PACK_HINT in str(error.value)


def test_registry_describes_the_test_embedder_as_provenance_measured_it():
    spec = embedder_spec("mobilefacenet_arcface_128")
    assert (spec.file, spec.input_size, spec.dim, spec.mean, spec.std) == (
        "mobilefacenet_arcface_128.onnx",
        112,
        128,
        127.5,
        127.5,
    )
    assert spec.sha256 and spec.sha256.startswith("e72a5710")
    assert EMBEDDERS["sface"].dim == 128
    with pytest.raises(ModelPackError, match="unknown embedder"):
        embedder_spec("nope")


def fixed_batch_flatten_model() -> onnx.ModelProto:
    """[1,2,2,2] -> Reshape([1,-1]) -> [1,8]: the shape of the MobileFaceNet test file's head."""
    shape = helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(np.array([1, -1]), "shape"))
    reshape = helper.make_node("Reshape", ["input", "shape"], ["output"])
    graph = helper.make_graph(
        [shape, reshape],
        "flatten",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2, 2, 2])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def test_fixed_batch_graph_becomes_dynamic():
    model = fixed_batch_flatten_model()
    assert make_batch_dynamic(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    batch = np.arange(3 * 8, dtype=np.float32).reshape(3, 2, 2, 2)
    output = session.run(None, {"input": batch})[0]
    assert output.shape == (3, 8)
    np.testing.assert_array_equal(output, batch.reshape(3, 8))


def test_already_dynamic_graph_is_left_alone():
    model = fixed_batch_flatten_model()
    make_batch_dynamic(model)
    assert not make_batch_dynamic(model)
