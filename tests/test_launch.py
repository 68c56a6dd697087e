"""`run_grpo.sh`: the launch command it builds (nothing launched), then end to end: accelerate + DeepSpeed on 2 CPU
processes, checkpoints, resume, wandb offline."""

import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# A fake `nvidia-smi --list-gpus` (shell builtins only) on a node of 8 GPUs, one of them split into 2 MIG instances.
EIGHT_GPUS = "printf '%s\\n' " + " ".join(
    shlex.quote(line)
    for line in [f"GPU {i}: NVIDIA H100 80GB HBM3 (UUID: GPU-{i:08d})" for i in range(8)]
    + [f"  MIG 3g.40gb     Device  {i}: (UUID: MIG-{i:08d})" for i in range(2)]
)


def dry_run(tmp_path: Path, nvidia_smi: str | None, **env: str) -> subprocess.CompletedProcess:
    """run_grpo.sh with a PATH holding only the tools it calls plus a fake `nvidia-smi` running the shell code
    `nvidia_smi` (None: no nvidia-smi at all), and PYTHON a fake that prints its arguments: the launch command."""
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("bash", "dirname", "grep"):
        (tools / tool).symlink_to(shutil.which(tool))
    fakes = {"python": 'printf "%s\\n" "$@"'} | ({"bin/nvidia-smi": nvidia_smi} if nvidia_smi is not None else {})
    for name, body in fakes.items():
        (tmp_path / name).write_text(f"#!/bin/sh\n{body}\n")
        (tmp_path / name).chmod(0o755)
    env = {"PATH": str(tools), "PYTHON": str(tmp_path / "python"), **env}
    command = [shutil.which("bash"), str(ROOT / "run_grpo.sh")]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def num_processes(result: subprocess.CompletedProcess) -> int:
    assert result.returncode == 0, result.stderr
    arguments = result.stdout.splitlines()
    return int(arguments[arguments.index("--num_processes") + 1])


@pytest.mark.parametrize(
    ("env", "processes"),
    [
        ({}, 8),  # why: the MIG lines are slices of GPUs already listed, not more GPUs
        ({"CUDA_VISIBLE_DEVICES": "0,1"}, 2),  # why: the case, which launched 10 processes
        ({"CUDA_VISIBLE_DEVICES": "0,1", "NNODES": "2"}, 4),  # why: processes of all nodes together
        ({"CUDA_VISIBLE_DEVICES": "4,-1,5"}, 1),  # why: CUDA shows no device from the first invalid entry on
        ({"CUDA_VISIBLE_DEVICES": "0,8"}, 1),  # why: ordinal 8 does not exist on 8 GPUs, so CUDA stops there
        ({"CUDA_VISIBLE_DEVICES": "GPU-00000003,GPU-00000004"}, 2),  # why: UUIDs name devices too
        ({"CUDA_VISIBLE_DEVICES": "0,1", "NUM_GPUS": "3"}, 3),  # why: a count given is used as given
    ],
)
def test_one_process_per_visible_gpu(tmp_path, env, processes):
    assert num_processes(dry_run(tmp_path, EIGHT_GPUS, **env)) == processes


@pytest.mark.parametrize(
    ("nvidia_smi", "env"),
    [
        (None, {}),  # why: no NVIDIA driver utilities installed
        ("exit 0", {}),  # why: nvidia-smi present, listing nothing
        ("echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'; exit 9", {}),  # why:
        # the driver's tools installed on a machine without a GPU (or with its driver broken)
        (EIGHT_GPUS, {"CUDA_VISIBLE_DEVICES": ""}),  # why: every GPU hidden from this job
    ],
    ids=["absent", "lists-nothing", "fails", "all-hidden"],
)
def test_gpu_recipe_without_a_visible_gpu_says_what_to_change(tmp_path, nvidia_smi, env):
    result = dry_run(tmp_path, nvidia_smi, **env)
    assert result.returncode == 2, result.stdout
    assert result.stdout == "", "launched anyway"
    [line] = result.stderr.splitlines()
    assert "MIXED_PRECISION=no NUM_GPUS=1 ACCELERATE_CONFIG=" in line and "configs/accelerate/cpu.yaml" in line
    assert "--use_cpu true --bf16 false" in line


def test_no_visible_gpu_without_mixed_precision_launches_one_process(tmp_path):
    assert num_processes(dry_run(tmp_path, None, MIXED_PRECISION="no")) == 1


@pytest.mark.slow
def test_the_cpu_command_the_refusal_names_trains_the_gpu_recipe(tiny_model_dir, train_file, tmp_path):
    refusal = dry_run(tmp_path, None).stderr
    words = shlex.split(refusal.split("one CPU process: ", 1)[1])
    script = words.index("bash")
    env = dict(word.split("=", 1) for word in words[:script])
    env |= {"CONFIG": "configs/r1_aqa_qwen2_audio_7b.yaml", "MODEL_NP": tiny_model_dir, "DATA_FILE": str(train_file),
            "OUT_DIR": str(tmp_path / "run")}  # fmt: skip
    launch(env, *words[script + 2 :], "--max_steps", "1", "--max_completion_length", "8")
    assert (tmp_path / "run" / "resolved_config.yaml").is_file()


@pytest.mark.parametrize("script", ["run_grpo.sh", "test_mmau.sh"])
def test_no_bare_array_expansion(script):
    """Under `set -u`, bash before 4.4 (still some clusters' default) aborts on "${a[@]}" of an empty array;
    `${a[@]+"${a[@]}"}` expands to nothing there. No such bash is installable here, so the text is checked."""
    text = "\n".join(line for line in (ROOT / script).read_text().splitlines() if not line.lstrip().startswith("#"))
    guarded = re.sub(r'\$\{(\w+)\[@\]\+"\$\{\1\[@\]\}"\}', "", text)
    assert not re.findall(r"\$\{\w+\[[@*]\]\}", guarded), 'write ${a[@]+"${a[@]}"} for an array that can be empty'


def launch(env_overrides: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "CONFIG": "configs/tiny_grpo.yaml",
        "MIXED_PRECISION": "no",
        "NUM_GPUS": "2",
        "MASTER_PORT": "29517",
        "WANDB_MODE": "offline",
        **env_overrides,
    }
    result = subprocess.run(
        ["bash", str(ROOT / "run_grpo.sh"), *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def global_step(checkpoint: Path) -> int:
    return json.loads((checkpoint / "trainer_state.json").read_text())["global_step"]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["zero2", "zero3"])
def test_two_processes_train_checkpoint_and_resume(tiny_model_dir, train_file, tmp_path, stage):
    out = tmp_path / "run"
    # The original's variable names, as a user of R1-AQA would type them.
    env = {
        "MODEL_NP": tiny_model_dir,
        "DATA_FILE": str(train_file),
        "OUT_DIR": str(out),
        "ACCELERATE_CONFIG": f"configs/accelerate/{stage}.yaml",
    }
    launch(env, "--save_steps", "2")
    checkpoint = out / "checkpoint-2"
    assert global_step(checkpoint) == 2
    assert (checkpoint / "resolved_config.yaml").is_file()
    assert any(checkpoint.glob("global_step2/*optim_states.pt")), "no optimizer state: the run could not resume"
    first_weights = (checkpoint / "model.safetensors").stat().st_mtime_ns

    result = launch({**env, "RESUME": "1"}, "--max_steps", "3", "--save_steps", "1")
    assert f"resuming from {checkpoint}" in result.stderr
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3]
    assert not (out / "checkpoint-1").exists(), "the resumed run started again from step 0"
    assert (checkpoint / "model.safetensors").stat().st_mtime_ns == first_weights


@pytest.mark.slow
def test_wandb_offline_run_holds_the_rewards(tiny_model_dir, train_file, tmp_path):
    env = {
        "MODEL_NP": tiny_model_dir,
        "DATA_FILE": str(train_file),
        "OUT_DIR": str(tmp_path / "run"),
        "WANDB_DIR": str(tmp_path),
        "NUM_GPUS": "1",
        "ACCELERATE_CONFIG": "configs/accelerate/zero2.yaml",
    }
    launch(env, "--report_to", "wandb", "--run_name", "offline-test")
    logs = list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logs) == 1, logs
    history = [step for step in wandb_history(logs[0]) if "train/reward" in step]
    assert [step["train/global_step"] for step in history] == [1, 2]
    for key in ("train/rewards/accuracy_reward/mean", "train/rewards/format_reward/mean", "train/kl"):
        assert all(key in step for step in history), sorted(history[0])


def wandb_history(path: Path) -> list[dict]:
    """The logged rows of an offline run, read from its event log (wandb 0.31 ships no Python reader for it).

    The file is a 7-byte header, then LevelDB-style records in 32-KiB blocks (4-byte checksum, 2-byte length, 1-byte
    type: 1 whole, 2 first, 3 middle, 4 last piece), each a protobuf `Record`.
    """
    from wandb.proto import wandb_internal_pb2

    data, position, pending, rows = path.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B", "not a wandb event log"
    while position + 7 <= len(data):
        left_in_block = 32768 - position % 32768
        if left_in_block < 7:
            position += left_in_block
            continue
        length, kind = struct.unpack("<HB", data[position + 4 : position + 7])
        if kind == 0:
            position += left_in_block
            continue
        chunk, position = data[position + 7 : position + 7 + length], position + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            if record.WhichOneof("record_type") == "history":
                rows.append(
                    {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
                )
    return rows
