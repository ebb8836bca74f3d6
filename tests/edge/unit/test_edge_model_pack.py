"""The model pack download keeps only files whose checksum the registry pins (tested with file:// URLs)."""

import hashlib

import pytest

from edge.model_pack import download
from edge.models import ModelFile, ModelPackError


def test_a_file_with_the_pinned_checksum_is_saved(tmp_path):
    source = tmp_path / "source.onnx"
    source.write_bytes(b"weights")
    spec = ModelFile("tiny", "tiny.onnx", hashlib.sha256(b"weights").hexdigest())
    path = download(spec, source.as_uri(), tmp_path / "pack")
    assert path.read_bytes() == b"weights"
    assert [p.name for p in (tmp_path / "pack").iterdir()] == ["tiny.onnx"]


def test_a_file_with_another_checksum_leaves_nothing_behind(tmp_path):
    source = tmp_path / "source.onnx"
    source.write_bytes(b"something else")
    with pytest.raises(ModelPackError, match="not saved"):
        download(ModelFile("tiny", "tiny.onnx", "0" * 64), source.as_uri(), tmp_path / "pack")
    assert list((tmp_path / "pack").iterdir()) == []


def test_plain_http_is_refused(tmp_path):
    with pytest.raises(ModelPackError, match="refusing"):
        download(ModelFile("tiny", "tiny.onnx", None), "http://example.invalid/x.onnx", tmp_path)
