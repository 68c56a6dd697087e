"""The benchmarks still run end to end (on the tiny model, a few seconds' work). No timing is asserted."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow
@pytest.mark.parametrize(
    "command",
    [
        ["grpo_step.py", "--model", "tiny", "--steps", "1", "--new-tokens", "4", "--clip-seconds", "2"],
        ["inference.py", "--model", "tiny", "--batch-sizes", "2", "--clips", "4", "--new-tokens", "4"],
        ["data_check.py", "--rows", "200", "--repeats", "1"],
        # why: a family whose clips are several rows, with its own encoder saving
        [
            "inference.py",
            "--family",
            "audio_flamingo3",
            "--batch-sizes",
            "2",
            "--clips",
            "2",
            "--new-tokens",
            "4",
            "--clip-seconds",
            "5",
            "45",
        ],
        # why: a family whose saving is processor-side only
        ["grpo_step.py", "--family", "qwen2_5_omni", "--steps", "1", "--new-tokens", "4", "--clip-seconds", "2"],
    ],
    ids=["grpo_step", "inference", "data_check", "inference_windows", "grpo_step_processor_saving"],
)
def test_benchmark_prints_its_table(command):
    result = subprocess.run([sys.executable, str(BENCH / command[0]), *command[1:]], capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    ratios = [
        cells[-1] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table[2:]) if cells[-1]
    ]
    assert ratios, result.stdout[-2000:]
    assert all(ratio.endswith("x") and float(ratio[:-1]) > 0 for ratio in ratios), ratios


# The parameter counts the published checkpoints' model cards list (Qwen/Qwen2-Audio-7B-Instruct: 8.4B).
PUBLISHED_PARAMETERS = {"qwen2_audio": 8.4e9}


@pytest.mark.parametrize("name", sorted(PUBLISHED_PARAMETERS))
def test_full_size_builder_has_the_published_parameter_count(name):
    """bench/gpu.sh's model, built on the meta device (shapes only, no memory), is the published size."""
    import torch

    from r1_aqa.families import FAMILIES

    model, _ = FAMILIES[name].build_full_size(torch.bfloat16, "meta")
    count = sum(parameter.numel() for parameter in model.parameters())
    assert abs(count - PUBLISHED_PARAMETERS[name]) / PUBLISHED_PARAMETERS[name] < 0.01, count
