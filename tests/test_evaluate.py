"""Inference on MMAU-format files with tiny models: batching, audio padding, resume, and test_mmau.sh."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from test_mmau import benchmark, write_mmau_folder
from test_trainer import reference_features

from r1_aqa import evaluate, mmau, summary, tiny
from r1_aqa.models import load_model, load_processor
from r1_aqa.processing import encode, load_clips
from r1_aqa.prompts import messages

ROOT = Path(__file__).resolve().parents[1]


def prepare_six(tmp_path) -> Path:
    """Six MMAU items (sound, music and speech) with synthetic clips of 0.5, 1 and 1.5 s, prepared for inference."""
    items, everything = [], benchmark("2025-05-15")
    for task in mmau.TASKS:
        items += [item for item in everything if item["task"] == task][:2]
    source = write_mmau_folder(tmp_path / "MMAU", items)
    output = tmp_path / "MMAU" / "mmau-test-mini.prepared.json"
    mmau.prepare(source, source.parent, output)
    return output


@pytest.fixture
def prepared(tmp_path) -> Path:
    return prepare_six(tmp_path)


def eval_args(model_dir, mmau_file, output_dir, **overrides) -> evaluate.EvalArguments:
    settings = dict(model_name_or_path=model_dir, benchmark_file=str(mmau_file), output_dir=str(output_dir),
                    prompt_style="answer", batch_size=6, max_new_tokens=12, dtype="float32")  # fmt: skip
    return evaluate.EvalArguments(**{**settings, **overrides})


def test_batched_greedy_answers_equal_one_at_a_time(tiny_model_dir, prepared, tmp_path):
    model = load_model(tiny_model_dir, "float32").eval()
    processor = load_processor(tiny_model_dir, padding_side="left")
    items = json.loads(prepared.read_text())
    batched = evaluate.answer_all(model, processor, items, eval_args(tiny_model_dir, prepared, tmp_path),
                                  tmp_path / "batched.json", silent=False)  # fmt: skip
    single = evaluate.answer_all(model, processor, items, eval_args(tiny_model_dir, prepared, tmp_path, batch_size=1),
                                 tmp_path / "single.json", silent=False)  # fmt: skip
    assert [p["model_output"] for p in batched] == [p["model_output"] for p in single]
    assert len({p["model_output"] for p in batched}) > 1, "all answers equal: the comparison would prove nothing"


def test_batch_pads_text_left_and_audio_right(tiny_model_dir, prepared):
    processor = load_processor(tiny_model_dir, padding_side="left")
    items = json.loads(prepared.read_text())
    conversations = [messages(i["audio_path"], i["question"], i["choices"]) for i in items]
    inputs = encode(processor, conversations, load_clips(conversations))
    assert (inputs["attention_mask"][:, -1] == 1).all() and (inputs["attention_mask"][:, 0] == 0).any()
    for row, item in enumerate(items):
        features, frame_mask = reference_features(processor, item["audio_path"])
        assert torch.equal(inputs["input_features"][row], features)
        assert torch.equal(inputs["feature_attention_mask"][row], frame_mask)


def test_outputs_keep_every_benchmark_key_and_resume_from_a_partial_file(tiny_model_dir, prepared, tmp_path):
    out = tmp_path / "eval"
    args = eval_args(tiny_model_dir, prepared, out, silent_audio_floor=False)
    items = json.loads(prepared.read_text())
    evaluate.main(args)  # records its settings: the same settings resume, others would start again
    (out / "predictions.json").unlink()
    (out / "metrics.json").unlink()
    # A run killed after two items, mid-way through writing the third line.
    partial = out / "predictions.partial.jsonl"
    partial.write_text("".join(json.dumps({"id": i["id"], "model_output": f"KEPT {n}"}) + "\n"
                               for n, i in enumerate(items[:2])) + '{"id": "' + items[2]["id"][:5])  # fmt: skip
    metrics = evaluate.main(args)
    predictions = json.loads((out / "predictions.json").read_text())
    assert [p["model_output"] for p in predictions[:2]] == ["KEPT 0", "KEPT 1"]  # not generated again
    assert all(not p["model_output"].startswith("KEPT") for p in predictions[2:])
    assert not partial.exists()
    for item, prediction in zip(items, predictions, strict=True):
        assert {k: v for k, v in item.items() if k != "audio_path"}.items() <= prediction.items()
        assert "model_prediction" in prediction
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["total"] == metrics["total"] and saved["benchmark"]["version"] == "2025-05-15"
    assert saved["decoding"] == {"max_new_tokens": 12, "do_sample": False}


def run_test_mmau(env: dict) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "CONFIG": str(ROOT / "configs" / "tiny_mmau_eval.yaml"), **env}
    result = subprocess.run(["bash", str(ROOT / "test_mmau.sh")], env=env, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def test_test_mmau_scores_every_checkpoint_once_and_completes_a_killed_one(prepared, tmp_path):
    run = tmp_path / "run"
    for step, seed in ((5, 0), (10, 1)):
        tiny.build(str(run / f"checkpoint-{step}"), seed=seed)
    env = {"RUN_DIR": str(run), "MMAU_DIR": str(prepared.parent)}
    first = run_test_mmau(env)
    files = ("predictions.json", "predictions_silence.json", "metrics.json")
    for step in (5, 10):
        assert all((run / "mmau" / f"checkpoint-{step}" / name).is_file() for name in files)
    for name in ("mmau_summary.md", "mmau_summary.csv", "mmau_accuracy.png"):
        assert (run / name).stat().st_size > 0
    rows = (run / "mmau_summary.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in rows[1:]] == [["checkpoint-5", "5"], ["checkpoint-10", "10"]]
    assert "selects on the test set" in first.stdout

    stamps = {p: p.stat().st_mtime_ns for p in (run / "mmau").rglob("*.json")}
    second = run_test_mmau(env)
    assert second.stdout.count("done already") == 2
    assert {p: p.stat().st_mtime_ns for p in (run / "mmau").rglob("*.json")} == stamps

    # Checkpoint 10 killed half-way through its silent-audio pass: its finished parts are kept.
    folder = run / "mmau" / "checkpoint-10"
    silence = json.loads((folder / "predictions_silence.json").read_text())
    (folder / "metrics.json").unlink()
    (folder / "predictions_silence.json").unlink()
    (folder / "predictions_silence.partial.jsonl").write_text(
        "".join(json.dumps({"id": p["id"], "model_output": "KEPT"}) + "\n" for p in silence[:3])
    )
    predictions_stamp = (folder / "predictions.json").stat().st_mtime_ns
    run_test_mmau(env)
    resumed = json.loads((folder / "predictions_silence.json").read_text())
    assert [p["model_output"] for p in resumed[:3]] == ["KEPT"] * 3
    # The rest were generated now (in other batches than the first time, so a random model may differ slightly).
    assert [p["id"] for p in resumed] == [p["id"] for p in silence]
    assert all(p["model_output"] != "KEPT" for p in resumed[3:])
    assert (folder / "predictions.json").stat().st_mtime_ns == predictions_stamp
    assert (folder / "metrics.json").is_file() and not list(folder.glob("*.partial.jsonl"))

    # A single model (a baseline) scored into the same run folder joins the same table, above the steps.
    tiny.build(str(tmp_path / "base-model"), seed=2)
    run_test_mmau({**env, "MODEL_PATH": str(tmp_path / "base-model")})
    rows = (run / "mmau_summary.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["base-model", "checkpoint-5", "checkpoint-10"]


def test_test_mmau_reports_missing_audio_by_id(tmp_path):
    items = benchmark("2025-05-15")[:3]
    write_mmau_folder(tmp_path / "MMAU", items, skip={items[2]["id"]})
    (tmp_path / "run" / "checkpoint-1").mkdir(parents=True)
    env = {**os.environ, "PYTHON": sys.executable, "RUN_DIR": str(tmp_path / "run"), "MMAU_DIR": str(tmp_path / "MMAU")}
    result = subprocess.run(["bash", str(ROOT / "test_mmau.sh")], env=env, capture_output=True, text=True)
    assert result.returncode == 2
    assert items[2]["id"] in result.stderr and "missing" in result.stderr


@pytest.mark.parametrize(
    ("trained", "option", "used", "warned"),
    [
        ("think", None, "think", False),  # why: a checkpoint is scored with the prompt it was trained with
        ("think", "answer", "answer", True),  # why: an explicit option wins, and the mismatch is said
        (None, None, "answer", False),  # why: a model without a resolved config (a base model) gets the answer prompt
    ],
)
def test_prompt_style_comes_from_the_checkpoint(tiny_model_dir, prepared, tmp_path, capsys, trained, option, used,
                                               warned):  # fmt: skip
    model = tmp_path / "checkpoint-1"
    shutil.copytree(tiny_model_dir, model)
    if trained:
        (model / "resolved_config.yaml").write_text(yaml.safe_dump({"data": {"prompt_style": trained}}))
    args = eval_args(str(model), prepared, tmp_path / "eval", prompt_style=option, max_new_tokens=2,
                     silent_audio_floor=False)  # fmt: skip
    assert evaluate.main(args)["prompt_style"] == used
    assert ("trained with prompt_style" in capsys.readouterr().err) == warned


def test_a_finished_evaluation_is_kept_and_one_with_other_settings_redone(tiny_model_dir, prepared, tmp_path, capsys):
    out = tmp_path / "eval"
    evaluate.main(eval_args(tiny_model_dir, prepared, out, max_new_tokens=4))
    stamps = {path: path.stat().st_mtime_ns for path in out.iterdir()}
    capsys.readouterr()
    evaluate.main(eval_args(tiny_model_dir, prepared, out, max_new_tokens=4))
    assert "done already" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in out.iterdir()} == stamps

    # Outputs of the old settings, finished and partial, marked: none of them may reach the new evaluation.
    predictions = json.loads((out / "predictions.json").read_text())
    (out / "predictions.json").write_text(json.dumps([{**p, "model_output": "OLD"} for p in predictions]))
    (out / "predictions_silence.json").unlink()
    (out / "predictions_silence.partial.jsonl").write_text(
        "".join(json.dumps({"id": p["id"], "model_output": "OLD"}) + "\n" for p in predictions[:3])
    )
    metrics = evaluate.main(eval_args(tiny_model_dir, prepared, out, max_new_tokens=6))
    assert "OLD" not in (out / "predictions.json").read_text() + (out / "predictions_silence.json").read_text()
    assert metrics["decoding"]["max_new_tokens"] == 6 and not list(out.glob("*.partial.jsonl"))
    # The old outputs are kept aside, not deleted (hours of 7B inference), and out of the summary's reach.
    aside = out / "superseded-1"
    assert json.loads((aside / "settings.json").read_text())["decoding"]["max_new_tokens"] == 4
    assert "OLD" in (aside / "predictions.json").read_text() and (aside / "metrics.json").is_file()


def test_an_evaluation_of_an_earlier_version_is_rescored_from_its_answers(tiny_model_dir, prepared, tmp_path, capsys,
                                                                          monkeypatch):  # fmt: skip
    out = tmp_path / "eval"
    evaluate.main(eval_args(tiny_model_dir, prepared, out, max_new_tokens=4))
    # As the version that landed before wrote it: no settings, metrics of the raw field only, and a
    # model_prediction of None where a completion has no tag.
    (out / "settings.json").unlink()
    (out / "metrics.json").write_text(json.dumps({"total": {"accuracy": 0.0}, "scored_field": "model_output"}))
    predictions = json.loads((out / "predictions.json").read_text())
    predictions[0] = {**predictions[0], "model_output": predictions[0]["answer"], "model_prediction": None}
    (out / "predictions.json").write_text(json.dumps(predictions))
    answers = {path: path.stat().st_mtime_ns for path in out.glob("predictions*.json")}
    monkeypatch.setattr(evaluate, "load_model", lambda *a, **k: pytest.fail("no inference for kept answers"))
    capsys.readouterr()
    metrics = evaluate.main(eval_args(tiny_model_dir, prepared, out, max_new_tokens=4))
    assert "done already" in capsys.readouterr().out
    assert {path: path.stat().st_mtime_ns for path in out.glob("predictions*.json")} == answers
    # why: scored as this version scores, its row compares with new checkpoints' (the bare answer text is right)
    assert metrics["headline"] == "answer" and set(metrics["fields"]) == {"answer", "raw"}
    assert metrics["fields"]["answer"]["total"]["correct"] >= 1 and "silent_audio" in metrics["floors"]
    assert json.loads((out / "metrics.json").read_text())["headline"] == "answer"
    assert not (out / "settings.json").exists()  # what settings produced these answers is still unknown


def test_chat_template_kwargs_of_training_reach_the_evaluation_prompts(tiny_model_dir, prepared, tmp_path):
    model = tmp_path / "checkpoint-1"
    shutil.copytree(tiny_model_dir, model)
    run = {"data": {"prompt_style": "answer"}, "training": {"chat_template_kwargs": {"preamble": "Be brief."}}}
    (model / "resolved_config.yaml").write_text(yaml.safe_dump(run))
    template = model / "chat_template.jinja"  # a template with a variable, as a researcher's own could have
    template.write_text("{% if preamble is defined %}{{ preamble }}{% endif %}" + template.read_text())
    args = evaluate.with_trained_prompt(eval_args(str(model), prepared, tmp_path / "eval"))
    assert args.chat_template_kwargs == {"preamble": "Be brief."}
    rendered = []
    upstream = evaluate.encode

    def recording(processor, conversations, clips=None, chat_template_kwargs=None):
        batch = upstream(processor, conversations, clips, chat_template_kwargs)
        rendered.extend(processor.tokenizer.batch_decode(batch["input_ids"], skip_special_tokens=False))
        return batch

    evaluate.encode = recording
    try:
        evaluate.main(replace(args, max_new_tokens=2, silent_audio_floor=False))
    finally:
        evaluate.encode = upstream
    assert rendered and all("Be brief.<|im_start|>" in text for text in rendered)


def test_test_mmau_scores_checkpoints_in_step_order_whatever_the_run_folder_is_called(tmp_path):
    run = tmp_path / "r1-aqa-run-7"  # why: dashes in the folder's own name once broke the sort by step
    for step in (10, 2, 100):
        (run / f"checkpoint-{step}").mkdir(parents=True)
    (tmp_path / "prepared.json").write_text("[]")
    fake = tmp_path / "python"  # stands in for Python: records each evaluation it is asked for
    fake.write_text('#!/usr/bin/env bash\n[[ $2 == r1_aqa.evaluate ]] && echo "$6" >> "$(dirname "$0")/calls"\n'
                    "exit 0\n")  # fmt: skip
    fake.chmod(0o755)
    env = {**os.environ, "PYTHON": str(fake), "RUN_DIR": str(run), "EVAL_FILE": str(tmp_path / "prepared.json")}
    subprocess.run(["bash", str(ROOT / "test_mmau.sh")], env=env, check=True, capture_output=True)
    steps = [line.rsplit("-", 1)[1] for line in (tmp_path / "calls").read_text().split()]
    assert steps == ["2", "10", "100"]


def prepare_mmar(tmp_path) -> Path:
    """Four MMAR items as downloaded (metadata + audio/<id>.wav): one of the six defective ones, one clip of 31 s."""
    from test_mmar import UPSTREAM_FIXES, items, write_mmar_folder

    everything = items()
    chosen = everything[:3] + [next(item for item in everything if item["id"] in UPSTREAM_FIXES)]
    write_mmar_folder(tmp_path / "MMAR", chosen, long={chosen[1]["id"]})
    return tmp_path / "MMAR"


def test_test_mmau_scores_each_benchmark_once_and_a_benchmark_added_later_alone(prepared, tmp_path):
    run = tmp_path / "run"
    for step, seed in ((5, 0), (10, 1)):
        tiny.build(str(run / f"checkpoint-{step}"), seed=seed)
    mmar_dir = prepare_mmar(tmp_path)
    env = {"RUN_DIR": str(run), "MMAU_DIR": str(prepared.parent), "MMAR_DIR": str(mmar_dir)}
    run_test_mmau({**env, "BENCHMARKS": "mmau"})
    assert not (run / "mmar").exists()
    mmau_stamps = {p: p.stat().st_mtime_ns for p in (run / "mmau").rglob("*.json")}

    added = run_test_mmau({**env, "BENCHMARKS": "mmau mmar"})
    assert added.stdout.count("done already") == 2  # MMAU's two checkpoints, not evaluated again
    assert {p: p.stat().st_mtime_ns for p in (run / "mmau").rglob("*.json")} == mmau_stamps
    files = ("predictions.json", "predictions_silence.json", "metrics.json")
    for name in ("mmau", "mmar"):
        for step in (5, 10):
            assert all((run / name / f"checkpoint-{step}" / file).is_file() for file in files)
    metrics = json.loads((run / "mmar" / "checkpoint-5" / "metrics.json").read_text())
    assert metrics["benchmark"]["key"] == "mmar" and metrics["benchmark"]["matching_versions"] == [
        "2025-05-11"
    ]  # why: a subset holding a defective item fits the published file only
    assert metrics["cut_clips"]["count"] == 1 and metrics["headline"] == "answer"
    assert len(metrics["answer_not_a_choice"]) == 1 and set(metrics["fields"]) == {"answer", "raw"}
    settings = json.loads((run / "mmar" / "checkpoint-5" / "settings.json").read_text())
    assert settings["benchmark"] == "mmar"

    table = (run / "mmau_summary.md").read_text()
    assert "### mmau: MMAU test-mini 2025-05-15: 6 items" in table
    assert "### mmar: MMAR 2025-05-11: 4 items, scored on answer" in table
    header = (run / "mmau_summary.csv").read_text().splitlines()[0].split(",")
    assert header[:2] == ["model", "step"]
    for column in ("mmau sound", "mmau average", "mmau first_choice", "mmar speech", "mmar average", "mmar missing",
                   "mmar version", "mmar field", "mmar items", "mmar average_raw"):  # fmt: skip
        assert column in header, column
    assert (run / "mmau_accuracy.png").stat().st_size > 0

    stamps = {p: p.stat().st_mtime_ns for p in run.rglob("*.json")}
    again = run_test_mmau({**env, "BENCHMARKS": "mmau mmar"})
    assert again.stdout.count("done already") == 4
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*.json")} == stamps


def test_shuffled_choices_reach_the_prompts_and_leave_the_predictions_keys(tiny_model_dir, prepared, tmp_path):
    items = json.loads(prepared.read_text())
    shown = []
    upstream = evaluate.encode

    def recording(processor, conversations, clips=None, chat_template_kwargs=None):
        shown.extend(conversation[0]["content"][1]["text"] for conversation in conversations)
        return upstream(processor, conversations, clips, chat_template_kwargs)

    evaluate.encode = recording
    try:
        out = tmp_path / "mmau" / "checkpoint-5"
        args = eval_args(tiny_model_dir, prepared, out, max_new_tokens=2, silent_audio_floor=False)
        evaluate.main(args)
        original, shown[:] = list(shown), []
        evaluate.main(replace(args, shuffle_choices=1))
    finally:
        evaluate.encode = upstream
    assert len(shown) == len(original) == len(items)
    moved = [item for item in items if evaluate.choices_shown(item, 1) != item["choices"]]
    assert len(moved) >= len(items) // 2, "the drawn orders hardly differ: the check below would prove little"
    for item in items:  # each prompt shows its item's drawn order; the original evaluation, the item's own
        assert f"{evaluate.choices_shown(item, 1)}." in "".join(shown) and f"{item['choices']}." in "".join(original)
    assert all(f"{item['choices']}." not in "".join(shown) for item in moved)
    predictions = json.loads((out / "shuffled-1" / "predictions.json").read_text())
    for item, prediction in zip(items, predictions, strict=True):  # scored against the item's own keys
        assert prediction["choices"] == item["choices"] and prediction["answer"] == item["answer"]
    settings = json.loads((out / "shuffled-1" / "settings.json").read_text())
    assert (
        settings["shuffle_choices"] == 1 and json.loads((out / "settings.json").read_text())["shuffle_choices"] is None
    )

    table = summary.summarize(tmp_path)
    shuffled = json.loads((out / "shuffled-1" / "metrics.json").read_text())["total"]["accuracy"]
    header, _, row = table.splitlines()[2:5]
    cells = dict(zip(header.split(" | "), row.split(" | "), strict=True))
    assert cells["shuffled-1"] == f"{shuffled:.2f}" and cells["average"] != "-"
    assert "shuffled-1" in (tmp_path / "mmau_summary.csv").read_text().splitlines()[0]


def test_a_line_cut_by_a_kill_is_dropped_before_the_next_batch_is_appended(tmp_path):
    partial = tmp_path / "predictions.partial.jsonl"
    partial.write_text('{"id": "a", "model_output": "x"}\n{"id": "b", "model_output": "y"}\n{"id": "c", "mod')
    assert evaluate.read_partial(partial) == {"a": "x", "b": "y"}
    with open(partial, "a", encoding="utf-8") as progress:  # what answer_all does next
        progress.write(json.dumps({"id": "d", "model_output": "z"}) + "\n")
    # why: glued to the cut line, "d" would be lost at the next resume and generated again
    assert evaluate.read_partial(partial) == {"a": "x", "b": "y", "d": "z"}
