"""`python -m edge.model_pack download --dir DIR`: fetch the test model pack (`make models`), checksums enforced.

Only for machines with internet; the edge itself never downloads anything at run time. The files come
from the pinned commits listed in ../shared/models/PROVENANCE.md and are refused unless their sha256 is
the registry's. Licences differ (see PROVENANCE.md): the MobileFaceNet file is a test fixture only, and
production deployments bring the model pack ops chose.
"""

import argparse
import sys
import tempfile
import urllib.request
from pathlib import Path

from edge.models import EMBEDDERS, YUNET, ModelFile, ModelPackError, file_sha256

SOURCES: dict[str, str] = {
    YUNET.file: "https://raw.githubusercontent.com/RuDr8A/RealTime-PPE-Compliance/"
    "d876a822bbb20180b9ed7850c1d3229d72883067/face_detection_yunet_2026may.onnx",
    EMBEDDERS["mobilefacenet_arcface_128"].file: "https://raw.githubusercontent.com/darzhz/pixamatch/"
    "7cc795413024ba57a193a8fa503968af09442a17/models/mobilefacenet.onnx",
}
PACK = (YUNET, EMBEDDERS["mobilefacenet_arcface_128"])


def download(spec: ModelFile, url: str, directory: Path, timeout_seconds: float = 60) -> Path:
    """Fetch `url` to `directory/spec.file` if its sha256 matches the registry; nothing is left otherwise."""
    if not url.startswith(("https://", "file://")):
        raise ModelPackError(f"refusing to fetch {spec.name} over {url.split(':', 1)[0]}")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / spec.file
    with tempfile.NamedTemporaryFile(dir=directory, prefix=f".{spec.file}.", delete=False) as partial:
        try:
            with urllib.request.urlopen(url, timeout=timeout_seconds) as response:  # noqa: S310 (scheme checked)
                partial.write(response.read())
            partial.close()
            actual = file_sha256(Path(partial.name))
            if spec.sha256 is not None and actual != spec.sha256:
                raise ModelPackError(f"{url} has sha256 {actual}, expected {spec.sha256}: not saved")
            Path(partial.name).replace(target)
        finally:
            Path(partial.name).unlink(missing_ok=True)
    return target


def main(argv: list[str] | None = None) -> None:
    root = argparse.ArgumentParser(prog="python -m edge.model_pack")
    commands = root.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("download", help="download the test model pack into a folder")
    fetch.add_argument("--dir", type=Path, required=True)
    args = root.parse_args(argv)
    try:
        for spec in PACK:
            path = download(spec, SOURCES[spec.file], args.dir)
            print(f"{spec.name}: {path}")
    except (ModelPackError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"set REVISIT_EDGE_MODEL_DIR={args.dir.resolve()}")


if __name__ == "__main__":
    main()
