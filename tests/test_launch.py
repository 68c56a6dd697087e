"""`run_grpo.sh` end to end: accelerate + DeepSpeed on 2 CPU processes, checkpoints, resume, wandb offline."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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
