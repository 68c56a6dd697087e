import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
from conftest import training_row, write_clip, write_jsonl

from r1_aqa import data


def test_valid_file_passes(train_file, capsys):
    assert data.main(["check", str(train_file)]) == 0
    assert capsys.readouterr().out == ""


def test_every_bad_line_is_reported_with_its_reason(tmp_path, capsys):
    write_clip(tmp_path / "good.wav", 0.5)
    (tmp_path / "broken.wav").write_bytes(b"RIFF garbage")
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros((0, 1), dtype=np.float32), 16_000)
    no_key = training_row(3, "good.wav")
    del no_key["multi_choice"]
    rows = [
        training_row(1, "good.wav"),  # line 1: valid
        "{not json",  # line 2
        no_key,  # line 3
        training_row(4, "good.wav", answer=4),  # line 4: index past the 4 choices
        {**training_row(5, "good.wav"), "multi_choice": []},  # line 5
        training_row(6, "missing.wav"),  # line 6
        training_row(7, "broken.wav"),  # line 7
        training_row(8, "empty.wav"),  # line 8
        "[1, 2]",  # line 9: JSON, but not an object
        training_row(10, "good.wav", answer=-1),  # line 10: negative index
    ]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    assert data.main(["check", str(path)]) == 1
    out = capsys.readouterr().out.splitlines()
    expected = {
        2: "not JSON",
        3: "missing key(s): multi_choice",
        4: "answer index 4 out of range",
        5: "empty choices",
        6: "audio missing",
        7: "audio does not decode",
        8: "no samples",
        9: "expected a JSON object",
        10: "answer index -1 out of range",
    }
    assert len(out) == len(expected), out
    for line, (number, reason) in zip(out, sorted(expected.items()), strict=True):
        assert line.startswith(f"{path}:{number}: "), line
        assert reason in line, line


def test_missing_file_is_reported_without_a_traceback(tmp_path, capsys):
    assert data.main(["check", str(tmp_path / "nope.jsonl")]) == 1
    assert "no such file" in capsys.readouterr().out


def test_load_rows_refuses_a_bad_file_and_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [training_row(1, "x.wav", answer=9)])
    with pytest.raises(ValueError, match=r"bad.jsonl:1: answer index 9"):
        data.load_rows(path)


def test_grpo_row_rewords_video_and_keeps_the_correct_choice(train_file):
    row = data.load_rows(train_file)[1]
    grpo = data.to_grpo_row(row, "answer", video_to_audio=True)
    assert grpo["solution"] == "noise" and grpo["choices"] == ["tone", "noise", "silence", "chirp"]
    text = grpo["prompt"][0]["content"][1]["text"]
    assert text.startswith("What sound is in the audio? Please choose")
    assert grpo["prompt"][0]["content"][0]["audio_url"] == str((train_file.parent / "audio/clip1.wav").resolve())


def avqa_item(index: int, video_name: str, answer: int = 1) -> dict:
    return {
        "id": index,
        "video_name": video_name,
        "video_id": 100 + index,
        "question_text": "What is in the video?",
        "multi_choice": ["dog", "cat", "car", "bell"],
        "answer": answer,
        "question_relation": "View",
        "question_type": "Which",
    }


def test_convert_avqa_finds_both_name_forms_and_rejects_with_reasons(tmp_path, capsys):
    clips = tmp_path / "wavs"
    write_clip(clips / "-HG3Omg_89c_000030.wav", 0.5)  # the name as AVQA spells it
    write_clip(clips / "abcdEFGhijk_40.wav", 0.5)  # the zero padding dropped, as the seed's wavs are named
    (clips / "brokenclip0_000010.wav").write_bytes(b"RIFF garbage")
    items = [
        avqa_item(0, "-HG3Omg_89c_000030"),
        avqa_item(1, "abcdEFGhijk_000040"),
        avqa_item(2, "noaudiohere_000000"),
        avqa_item(3, "brokenclip0_000010"),
        avqa_item(4, "-HG3Omg_89c_000030", answer=7),
    ]
    qa = tmp_path / "train_qa.json"
    qa.write_text(json.dumps(items))
    output = tmp_path / "out" / "train.jsonl"
    assert data.main(["convert-avqa", "--qa", str(qa), "--audio-dir", str(clips), "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "2 rows written" in printed and "3 rejected" in printed
    kept = [json.loads(line) for line in output.read_text().splitlines()]
    rejects = [json.loads(line) for line in (tmp_path / "out" / "train.rejects.jsonl").read_text().splitlines()]
    assert [row["id"] for row in kept] == [0, 1]
    assert all(row["dataset_name"] == "AVQA" and set(row) == set(data.FIELDS) for row in kept)
    assert {r["id"]: r["reason"].split(":")[0] for r in rejects} == {
        2: "audio missing",
        3: str(clips / "brokenclip0_000010.wav"),
        4: "answer index 7 out of range for 4 choices",
    }
    assert data.main(["check", str(output)]) == 0  # what the converter keeps, the checker accepts


def test_convert_avqa_reports_unreadable_annotations(tmp_path, capsys):
    qa = tmp_path / "train_qa.json"
    qa.write_text("{broken")
    assert data.main(["convert-avqa", "--qa", str(qa), "--audio-dir", str(tmp_path), "--output", "x.jsonl"]) == 2
    assert "train_qa.json: cannot read AVQA annotations" in capsys.readouterr().err


def test_training_refuses_a_bad_file_naming_line_and_reason(tiny_model_dir, tmp_path):
    write_clip(tmp_path / "good.wav", 0.5)
    path = write_jsonl(tmp_path / "train.jsonl", [training_row(1, "good.wav"), training_row(2, "gone.wav")])
    config = Path(__file__).resolve().parents[1] / "configs" / "tiny_grpo.yaml"
    command = [
        sys.executable,
        "-m",
        "r1_aqa.train",
        "--config",
        str(config),
        "--model_name_or_path",
        tiny_model_dir,
        "--data_file",
        str(path),
        "--output_dir",
        str(tmp_path / "out"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert f"{path}:2: audio missing: {tmp_path / 'gone.wav'}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("checkpoint-*"))
