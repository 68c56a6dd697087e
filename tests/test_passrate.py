"""Pass rates and the training files made from them, on a tiny model taught one synthetic task by a short SFT."""

import json
import re
from pathlib import Path

import pytest
from conftest import write_jsonl
from trl import SFTConfig

from r1_aqa import data, passrate, sft, subsets, synthetic, tiny
from r1_aqa.files import resume_jsonl

# A question the text answers alone: "cow" whatever the clip, so silence cannot move it.
MOO = "Which animal says moo?"
WEAK = 6  # of 8 samples, as in configs/audio_contribution_split.yaml


@pytest.fixture(scope="module")
def task_files(tmp_path_factory) -> dict[str, Path]:
    """`sft`: pitch (audio-dependent) and moo (text-answerable) items; `measure`: those plus count items, a task
    the model never sees. Relative clip paths, in the synthetic set's folder."""
    root = synthetic.build(tmp_path_factory.mktemp("tasks"), train_per_task=48, eval_per_task=0, seed=1)
    rows = [json.loads(line) for line in (root / "train.jsonl").read_text().splitlines()]
    pitch = [row for row in rows if row["question_type"] == "pitch"]
    count = [row for row in rows if row["question_type"] == "count"][:16]
    moo = []
    for index, row in enumerate(pitch[:24]):
        choices = ["cow", "cat"] if index % 2 == 0 else ["cat", "cow"]
        moo.append({**row, "id": f"moo-{index:05d}", "question_text": MOO, "multi_choice": choices,
                    "answer": choices.index("cow"), "question_type": "moo"})  # fmt: skip
    return {"sft": write_jsonl(root / "sft.jsonl", pitch + moo),
            "measure": write_jsonl(root / "measure.jsonl", pitch + moo + count)}  # fmt: skip


@pytest.fixture(scope="module")
def trained_model(task_files, tmp_path_factory) -> str:
    """A tiny model (4-s audio window: the clips last 1-3 s) after 120 SFT steps (~20-60 s on 2 cores): enough to
    hear pitch (80 steps at 3e-3 were not: its pass rates were the same with silence)."""
    root = tmp_path_factory.mktemp("trained")
    base = tiny.build(str(root / "tiny"), hidden_size=64, chunk_length=4)
    training = SFTConfig(
        output_dir=str(root / "sft"), use_cpu=True, bf16=False, gradient_checkpointing=False, max_steps=120,
        per_device_train_batch_size=16, learning_rate=2e-3, lr_scheduler_type="cosine", warmup_steps=10,
        report_to="none", save_strategy="no", logging_steps=40, seed=0,
    )  # fmt: skip
    sft.main(sft.SFTDataArguments(data_file=str(task_files["sft"]), question_video_to_audio=False), training,
             sft.AudioModelConfig(model_name_or_path=base, dtype="float32"))  # fmt: skip
    return str(root / "sft")


def arguments(model, data_file, output, **overrides) -> passrate.PassRateArguments:
    # Temperature 0.5: this model's answers at 1.0 are right barely more often than not even on the task it learnt.
    settings = dict(model_name_or_path=str(model), data_file=str(data_file), output=str(output), num_generations=8,
                    max_completion_length=12, temperature=0.5, batch_size=8, dtype="float32",
                    question_video_to_audio=False)  # fmt: skip
    return passrate.PassRateArguments(**{**settings, **overrides})


def by_task(records: list[dict]) -> dict[str, list[dict]]:
    tasks = {}
    for record in records:
        tasks.setdefault(record["id"].split("-")[0], []).append(record)
    return tasks


@pytest.fixture(scope="module")
def audio_rates(trained_model, task_files, tmp_path_factory) -> tuple[Path, list[dict]]:
    output = tmp_path_factory.mktemp("audio") / "rates.jsonl"
    return output, passrate.main(arguments(trained_model, task_files["measure"], output))


@pytest.fixture(scope="module")
def with_audio(audio_rates) -> list[dict]:
    return audio_rates[1]


def split_files(model, data_file, folder: Path, seed: int = 42) -> tuple[list[str], list[str]]:
    folder.mkdir(parents=True, exist_ok=True)
    outputs = {f"{name}_output": str(folder / f"{name}.jsonl") for name in ("weak", "strong")}
    passrate.main(
        arguments(
            model, data_file, folder / "rates.jsonl", silent_audio=True, seed=seed, weak_min_passes=WEAK, **outputs
        )
    )
    return tuple([str(row["id"]) for row in data.load_rows(folder / f"{name}.jsonl")] for name in ("weak", "strong"))


@pytest.fixture(scope="module")
def silent_split(trained_model, task_files, tmp_path_factory):
    return split_files(trained_model, task_files["measure"], tmp_path_factory.mktemp("silent"))


def mean_rate(records: list[dict]) -> float:
    return sum(record["pass_rate"] for record in records) / len(records)


def test_items_of_the_learnt_task_pass_more_often_than_those_of_an_unlearnt_one(with_audio):
    tasks = by_task(with_audio)
    # Seen 2026-12-01: pitch 0.98, count 0.00 (the model answers "low" or "high" to every question it knows).
    assert mean_rate(tasks["pitch"]) > mean_rate(tasks["count"]) + 0.5, {t: mean_rate(r) for t, r in tasks.items()}
    assert all(record["samples"] == 8 and record["passes"] == 8 * record["pass_rate"] for record in with_audio)


def test_silence_moves_items_of_the_audio_dependent_task_to_strong(with_audio, silent_split):
    weak, strong = silent_split
    pitch = [record["id"] for record in with_audio if record["id"].startswith("pitch")]
    weak_with_audio, _ = subsets.split(with_audio, WEAK)  # the same rule on what the model hears
    moved = set(pitch) & set(weak_with_audio) & set(strong)
    # Seen: 48 of 48 pitch items weak with audio, 24 strong with silence (the other 24 have the answer the model
    # gives to silence, so they stay weak: the text alone does "answer" them).
    assert len(moved) >= len(pitch) // 3, (len(set(pitch) & set(weak_with_audio)), len(set(pitch) & set(strong)))
    assert {key for key in strong if key.startswith("moo")} == set()  # the text answers them, silence or not
    assert not any(key.startswith("count") for key in weak)
    assert sorted(weak + strong) == sorted(record["id"] for record in with_audio)


def test_the_split_is_deterministic_for_a_seed(trained_model, task_files, silent_split, tmp_path):
    assert split_files(trained_model, task_files["measure"], tmp_path / "again") == silent_split


def test_split_sizes_are_printed(trained_model, task_files, silent_split, tmp_path, capsys):
    split_files(trained_model, task_files["measure"], tmp_path / "printed")
    out = capsys.readouterr().out
    weak, strong = silent_split
    assert f"weak audio contribution: {len(weak)} items" in out and f"strong audio contribution: {len(strong)}" in out


def records(*passes: int, samples: int = 4) -> list[dict]:
    return [{"id": f"i{n}", "passes": p, "samples": samples, "pass_rate": p / samples} for n, p in enumerate(passes)]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({}, ["i0", "i1", "i2", "i3", "i4"]),  # why: no rule keeps every item in the data's order
        ({"drop_unsolved": True}, ["i1", "i2", "i3", "i4"]),  # why: 0 of 4 passes teaches GRPO nothing
        ({"drop_solved": True}, ["i0", "i1", "i3"]),  # why: 4 of 4 neither; both of them go
        ({"drop_unsolved": True, "drop_solved": True}, ["i1", "i3"]),  # why: only groups whose rewards differ
        ({"order": "easy_to_hard"}, ["i2", "i4", "i3", "i1", "i0"]),  # why: highest pass rate first, ties in order
        ({"order": "easy_to_hard", "drop_solved": True}, ["i3", "i1", "i0"]),  # why: filters and order combine
    ],
)
def test_selection_holds_exactly_the_items_the_rule_keeps(rule, expected):
    assert subsets.select(records(0, 1, 4, 3, 4), **rule) == expected


@pytest.mark.parametrize(
    ("min_passes", "weak"),
    [
        (4, ["i2", "i4"]),  # why: right every time without audio
        (1, ["i1", "i2", "i3", "i4"]),  # why: one right guess is enough at k = 1
    ],
)
def test_split_by_passes_without_audio(min_passes, weak):
    assert subsets.split(records(0, 1, 4, 3, 4), min_passes) == (weak, [i for i in ["i0", "i1", "i2", "i3", "i4"]
                                                                        if i not in weak])  # fmt: skip


def test_written_rows_are_the_source_rows_and_pass_the_checker(train_file, tmp_path):
    lines = {json.loads(line)["id"]: line for line in train_file.read_text().splitlines()}
    beside = tmp_path / "beside.jsonl"
    assert subsets.write_rows(train_file, ["5", "2"], beside) == 2
    assert beside.read_text().splitlines() == [json.dumps(json.loads(lines[5]), ensure_ascii=False),
                                               json.dumps(json.loads(lines[2]), ensure_ascii=False)]  # fmt: skip
    elsewhere = tmp_path / "other" / "deeper" / "filtered.jsonl"
    subsets.write_rows(train_file, ["5", "2"], elsewhere)
    assert data.check(beside) == [] and data.check(elsewhere) == []
    moved = [json.loads(line) for line in elsewhere.read_text().splitlines()]
    assert [row["audio_path"] for row in moved] == ["../../audio/clip5.wav", "../../audio/clip2.wav"]
    assert [{**row, "audio_path": None} for row in moved] == [{**json.loads(lines[i]), "audio_path": None}
                                                              for i in (5, 2)]  # fmt: skip


def test_filtered_output_from_measured_rates_generates_nothing(trained_model, task_files, audio_rates, tmp_path,
                                                               monkeypatch):  # fmt: skip
    output = audio_rates[0]
    monkeypatch.setattr(passrate, "generate", lambda *args, **kwargs: pytest.fail("pass rates measured again"))
    filtered = tmp_path / "learnable.jsonl"
    rule = {"filtered_output": str(filtered), "drop_unsolved": True, "drop_solved": True}
    measured = passrate.main(arguments(trained_model, task_files["measure"], output, **rule))
    expected = [record["id"] for record in measured if 0 < record["passes"] < record["samples"]]
    assert expected and [str(row["id"]) for row in data.load_rows(filtered)] == expected


def test_a_killed_run_resumes_without_redoing_items(trained_model, train_file, tmp_path, monkeypatch):
    output = tmp_path / "rates.jsonl"
    # One item a batch: every batch is seeded by its number, so the resumed items sample what they did unbroken.
    settings = dict(num_generations=4, batch_size=1, question_video_to_audio=True)
    unbroken = passrate.main(arguments(trained_model, train_file, output, **settings))
    by_id = {record["id"]: record for record in unbroken}
    output.unlink()  # killed before the end: its settings and three whole lines saved, a fourth cut short
    kept = {key: {**by_id[key], "rewards": {"kept": 1.0}} for key in ("1", "4", "6")}
    partial = output.with_suffix(".partial.jsonl")
    partial.write_text("".join(json.dumps(record) + "\n" for record in kept.values()) + '{"id": "7", "pas')
    generated, real = [], passrate.generate

    def spy(model, processor, conversations, *args, **kwargs):
        if len(generated) == limit:
            raise KeyboardInterrupt  # killed again
        generated.extend(Path(c[0]["content"][0]["audio_url"]).stem for c in conversations)
        return real(model, processor, conversations, *args, **kwargs)

    monkeypatch.setattr(passrate, "generate", spy)
    limit = 1
    with pytest.raises(KeyboardInterrupt):
        passrate.main(arguments(trained_model, train_file, output, **settings))
    # The cut line is gone, not glued to the record appended after it.
    assert sorted(resume_jsonl(partial)) == ["0", "1", "4", "6"]
    limit = None
    resumed = passrate.main(arguments(trained_model, train_file, output, **settings))
    assert generated == [f"clip{i}" for i in (0, 2, 3, 5, 7)]
    assert resumed == [kept.get(record["id"], record) for record in unbroken]
    assert not partial.exists() and [json.loads(line) for line in output.read_text().splitlines()] == resumed


def test_rates_of_other_settings_are_refused(trained_model, train_file, tmp_path):
    output = tmp_path / "rates.jsonl"
    passrate.main(arguments(trained_model, train_file, output, num_generations=2))
    with pytest.raises(data.DataError, match=rf"{output}.*other settings \(decoding\)"):
        passrate.main(arguments(trained_model, train_file, output, num_generations=2, temperature=1.0))


@pytest.mark.parametrize(
    ("problem", "message"),
    [
        ("no data file", r"nowhere\.jsonl: no such file"),  # why: the file named, not a traceback
        ("bad row", r"bad\.jsonl:2: answer index 9 out of range"),  # why: data.DataError's file:line
        ("no model", r"missing-model: no such model folder"),  # why: not the hub's complaint about a repo id
    ],
)
def test_bad_input_exits_2_naming_the_file(trained_model, train_file, tmp_path, capsys, problem, message):
    model, data_file = trained_model, str(train_file)
    if problem == "no data file":
        data_file = str(tmp_path / "nowhere.jsonl")
    elif problem == "bad row":
        rows = [json.loads(line) for line in train_file.read_text().splitlines()]
        rows[1]["answer"] = 9
        data_file = str(write_jsonl(train_file.parent / "bad.jsonl", rows))
    else:
        model = str(tmp_path / "missing-model")
    assert passrate.cli(["--model", model, "--data", data_file, "--samples", "2", "--dtype", "float32"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and re.search(message, error) and "Traceback" not in error, error


@pytest.mark.parametrize(
    "settings",
    [
        {"weak_output": "w.jsonl"},  # why: the split reads pass rates measured with silence
        {"filtered_output": "f.jsonl"},  # why: a filtered file without a rule would copy the data
        {"drop_solved": True},  # why: a rule without a file would write nothing
        {"weak_min_passes": 9},  # why: more than G samples can never pass
        {"reward_funcs": ["letters"]},  # why: names come from the rewards registry
        {"order": "hard_to_easy"},  # why: only the orders subsets.ORDERS knows
    ],
)
def test_inconsistent_arguments_fail_at_parse_time(settings):
    with pytest.raises(ValueError):
        passrate.PassRateArguments(model_name_or_path="m", data_file="d.jsonl", num_generations=8, **settings)


def test_a_grpo_recipe_is_a_config(tmp_path):
    recipe = Path(__file__).resolve().parents[1] / "configs" / "tiny_grpo.yaml"
    from trl import TrlParser

    (args,) = TrlParser((passrate.PassRateArguments,)).parse_args_and_config(
        ["--config", str(recipe), "--samples", "3"], fail_with_unknown_args=False
    )
    assert (args.model_name_or_path, args.num_generations, args.max_completion_length, args.top_k) == (
        "exp/tiny-qwen2-audio", 3, 16, 50)  # fmt: skip
    assert args.output == "exp/tiny-data/train.passrate.jsonl"
