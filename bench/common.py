"""Shared by the benchmarks: models built from configs (no download), synthetic clips, peak memory."""

import json
import resource
import sys
from pathlib import Path

import numpy as np
import soundfile
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

# tiny: the test model, of any family. For the paper's model only (the default family): mid, the real audio
# encoder's width (d_model 1280, 20 heads, ffn 5120) with 2 of its 32 layers and a small LM, so that the encoder's
# share of a step shows roughly as at full size; 7b, the published sizes with random weights, built in memory by the
# family's `build_full_size` (GPU only: ~17 GB in bf16).
MODELS = {
    "tiny": {"hidden_size": 64},
    "mid": {"hidden_size": 256, "encoder_width": 1280, "encoder_layers": 2},
    "7b": {},
}


def check_size(name: str, family: str | None) -> str:
    """The family (default: the paper's model's); sizes other than tiny exist for that one only."""
    from r1_aqa.families import DEFAULT_FAMILY

    family = family or DEFAULT_FAMILY
    if name != "tiny" and family != DEFAULT_FAMILY:
        raise SystemExit(f"--model {name} exists for {DEFAULT_FAMILY} only; other families: --model tiny")
    return family


def build_model(name: str, folder: Path, family: str | None = None) -> str:
    """A model of size `name` in `folder`; sizes other than tiny are the paper's model's (the default family) only."""
    from r1_aqa import tiny

    family = check_size(name, family)
    if not (folder / "config.json").is_file():
        tiny.build(str(folder), family, **MODELS[name])
    return str(folder)


def set_savings(model, on: bool) -> None:
    """The model family's exact savings on or off, model-side (encoder) and processor-side (padding) alike."""
    import dataclasses

    from r1_aqa.families import FAMILIES, family_of, no_call_kwargs

    family = family_of(model)
    kept = SAVED_KWARGS.setdefault(family.name, family.saving_kwargs)
    FAMILIES[family.name] = dataclasses.replace(FAMILIES[family.name], saving_kwargs=kept if on else no_call_kwargs)
    if family.enable_savings is not None:
        (family.enable_savings if on else family.disable_savings)(model)


SAVED_KWARGS = {}  # each family's processor-side saving, as registered


def load(name: str, work: Path, fast_audio_encoder: bool, family: str | None = None):
    """(model on the device, processor, device). tiny and mid go through a saved folder, as training loads them."""
    from r1_aqa.families import FAMILIES
    from r1_aqa.models import load_model, load_processor

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    if name != "7b":
        folder = build_model(name, work / name, family)
        model = load_model(folder, str(dtype).removeprefix("torch."), fast_audio_encoder=False)
        set_savings(model, fast_audio_encoder)
        return model.to(device), load_processor(folder), device
    full_size = FAMILIES[check_size(name, family)].build_full_size
    torch.manual_seed(0)
    model, processor = full_size(dtype, device)
    set_savings(model, fast_audio_encoder)
    return model, processor, device


def write_clips(folder: Path, seconds: list[float], seed: int = 0) -> list[Path]:
    """Noise bursts and tones of the given lengths, as 16-kHz wavs."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index, length in enumerate(seconds):
        n = int(length * 16_000)
        clip = 0.3 * rng.standard_normal(n) if index % 2 else 0.5 * np.sin(np.arange(n) * 0.1 * (index + 1))
        path = folder / f"clip{index:03d}_{length:g}s.wav"
        soundfile.write(str(path), clip.astype(np.float32), 16_000)
        paths.append(path)
    return paths


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return f"CPU ({torch.get_num_threads()} threads)"


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}")
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    print("| " + " | ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def emit(result: dict) -> None:
    """A child process's result, as the last line of its output."""
    print("RESULT " + json.dumps(result))


def parse(output: str) -> dict:
    return json.loads([line for line in output.splitlines() if line.startswith("RESULT ")][-1][len("RESULT ") :])
