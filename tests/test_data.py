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
    soundfile.write(str(tmp_path / "short.wav"), np.zeros(960, dtype=np.float32), 16_000)
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
        training_row(1, "good.wav"),  # line 11: the id of line 1; rewards and evaluation key rows by id
        {**training_row(12, "good.wav"), "id": "10"},  # line 12: "10" and 10 are one id once read as text
        {**training_row(13, "good.wav"), "multi_choice": ["Dog", " dog", "cat", "car"]},  # line 13: same once folded
        training_row(14, "short.wav"),  # line 14: one audio token; a batch of such clips takes the legacy merge
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
        11: "duplicate id 1 (first on line 1)",
        12: "duplicate id '10' (first on line 10)",
        13: "duplicate choices 'Dog', ' dog'",
        14: "audio too short: 960 samples at 16 kHz",
    }
    assert len(out) == len(expected), out
    for line, (number, reason) in zip(out, sorted(expected.items()), strict=True):
        assert line.startswith(f"{path}:{number}: "), line
        assert reason in line, line


def test_missing_file_is_reported_without_a_traceback(tmp_path, capsys):
    assert data.main(["check", str(tmp_path / "nope.jsonl")]) == 1
    assert "no such file" in capsys.readouterr().out


@pytest.mark.parametrize("audio_check", ["header", "decode"])
@pytest.mark.parametrize(
    ("rate", "frames", "short"),
    [
        (16_000, 961, False),  # why: the fewest samples that give two adjacent audio tokens
        (16_000, 960, True),  # why: one audio token (6 mel frames); alone in a batch it takes the legacy merge
        (16_000, 320, True),  # why: no audio token at all: the clip would vanish from the prompt
        (48_000, 2883, False),  # why: 961 samples once resampled to 16 kHz
        (48_000, 2881, True),  # why: 960 once resampled, though 2881 frames at 48 kHz look long enough
    ],
)
def test_clip_too_short_for_two_audio_tokens_is_reported(tmp_path, audio_check, rate, frames, short):
    soundfile.write(str(tmp_path / "clip.wav"), np.zeros(frames, dtype=np.float32), rate)
    path = write_jsonl(tmp_path / "train.jsonl", [training_row(1, "clip.wav")])
    report = data.check(path, audio_check)
    assert (report != []) == short, report
    assert all("audio too short" in line for line in report), report


def test_byte_order_mark_is_accepted(train_file):
    train_file.write_bytes(b"\xef\xbb\xbf" + train_file.read_bytes())  # as Windows editors save UTF-8
    assert data.check(train_file) == []
    assert data.load_rows(train_file)[0]["id"] == 0


def test_training_load_reads_every_clip_header(tmp_path):
    write_clip(tmp_path / "good.wav", 0.5)
    (tmp_path / "broken.wav").write_bytes(b"RIFF garbage")
    path = write_jsonl(tmp_path / "train.jsonl", [training_row(1, "good.wav"), training_row(2, "broken.wav")])
    with pytest.raises(data.DataError, match=r"train.jsonl:2: .*broken.wav: audio does not decode"):
        data.load_rows(path)  # what training calls, before the model loads


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
    soundfile.write(str(clips / "shortclip00_000000.wav"), np.zeros(800, dtype=np.float32), 16_000)  # 50 ms
    items = [
        avqa_item(0, "-HG3Omg_89c_000030"),
        avqa_item(1, "abcdEFGhijk_000040"),
        avqa_item(2, "noaudiohere_000000"),
        avqa_item(3, "brokenclip0_000010"),
        avqa_item(4, "-HG3Omg_89c_000030", answer=7),
        avqa_item(0, "abcdEFGhijk_000040"),  # the id of the first question
        {**avqa_item(6, "abcdEFGhijk_000040"), "multi_choice": ["dog", "Dog", "car", "bell"]},
        avqa_item(7, "shortclip00_000000"),
        avqa_item(2, "-HG3Omg_89c_000030"),  # the id of a rejected question: free, so kept
        {key: value for key, value in avqa_item(9, "-HG3Omg_89c_000030").items() if key != "id"},
    ]
    qa = tmp_path / "train_qa.json"
    qa.write_text(json.dumps(items))
    output = tmp_path / "out" / "train.jsonl"
    assert data.main(["convert-avqa", "--qa", str(qa), "--audio-dir", str(clips), "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "3 rows written" in printed and "7 rejected" in printed
    kept = [json.loads(line) for line in output.read_text().splitlines()]
    rejects = [json.loads(line) for line in (tmp_path / "out" / "train.rejects.jsonl").read_text().splitlines()]
    assert [row["id"] for row in kept] == [0, 1, 2]
    assert all(row["dataset_name"] == "AVQA" and set(row) == set(data.FIELDS) for row in kept)
    assert {r["index"]: r["reason"].removeprefix(str(clips) + "/").split(":")[0] for r in rejects} == {
        2: "audio missing",
        3: "brokenclip0_000010.wav",
        4: "answer index 7 out of range for 4 choices",
        5: "duplicate id 0 (first at index 0)",
        6: "duplicate choices 'dog', 'Dog' (case and spacing folded, as the accuracy reward compares them)",
        7: "shortclip00_000000.wav",
        9: "no id",
    }
    assert "audio too short" in rejects[-2]["reason"]
    assert data.main(["check", str(output)]) == 0  # what the converter keeps, the checker accepts


def test_convert_avqa_reports_unreadable_annotations(tmp_path, capsys):
    qa = tmp_path / "train_qa.json"
    qa.write_text("{broken")
    assert data.main(["convert-avqa", "--qa", str(qa), "--audio-dir", str(tmp_path), "--output", "x.jsonl"]) == 2
    assert "train_qa.json: cannot read AVQA annotations" in capsys.readouterr().err


def test_training_refuses_a_bad_file_naming_line_and_reason(tiny_model_dir, tmp_path):
    write_clip(tmp_path / "good.wav", 0.5)
    (tmp_path / "broken.wav").write_bytes(b"RIFF garbage")  # would crash the run at its first batch with this clip
    rows = [training_row(1, "good.wav"), training_row(2, "gone.wav"), training_row(3, "broken.wav")]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
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
    assert f"{path}:3: {tmp_path / 'broken.wav'}: audio does not decode" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("checkpoint-*"))
