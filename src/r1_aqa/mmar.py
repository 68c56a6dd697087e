"""MMAR (1000 items: speech, sound, music and their mixes): keys, versions, defects and clips (a registry entry).

    python -m r1_aqa.benchmarks prepare mmar --source data/MMAR/MMAR-meta.json --audio-dir data/MMAR \
        --output data/MMAR/MMAR-meta.prepared.json [--skip-missing] [--fix-defects]
    python -m r1_aqa.score PREDICTIONS.json --output metrics.json

The official rule is MMAU's `string_match` unchanged; the 2025-05-11 script scores `model_prediction`. Six items of
that file have an answer that is not one of their choices: they are kept and listed, and `--fix-defects` applies
the fixes upstream made on 2026-02-16, by id. Clips are `audio/<id>.wav` under the folder the download unpacks to.
"""

from pathlib import Path

from r1_aqa import benchmarks
from r1_aqa.benchmarks import Benchmark

BENCHMARK_KEYS = ("id", "question", "choices", "answer", "modality", "category", "sub-category")  # audio_path: moved
MODALITIES = ("sound", "music", "speech", "mix-sound-music", "mix-sound-speech", "mix-music-speech",
              "mix-sound-music-speech")  # fmt: skip
LAYERS = ("Signal Layer", "Perception Layer", "Semantic Layer", "Cultural Layer")
ORDER = (*MODALITIES, *LAYERS)  # the paper's column order; sub-categories follow by name
GROUPS = ("modality", "category", "sub-category")


def _choice(index: int, strip: bool = False):
    def fix(item: dict) -> dict:
        choices = [choice.strip() for choice in item["choices"]] if strip else item["choices"]
        return {**item, "choices": choices, "answer": choices[index]}

    return fix


# Upstream's fixes (ddlBoJack/MMAR a355584b, 2026-02-16) of the six answers that are not one of their choices.
FIXES = {
    "BV1NtQuYTELJ_00-00-00_00-00-26": _choice(1),  # two choices joined by a newline
    "BV1mifMY4Ebq_00-02-41_00-03-10": _choice(1),  # three of six choices joined by newlines
    "BV1NX4y1p7Xq_00-33-16_00-33-45": _choice(3),  # the choice without its "Because " prefix
    "BV16j411E7Z9_00-00-13_00-00-34": _choice(3),  # a truncated choice
    "BV1P4411677K_0-00_0-20": _choice(0),  # a paraphrase of a choice
    "Txj3Qv1lJgs_00-00-00_00-00-16": _choice(3, strip=True),  # '2040' against the choice '2040 '
}


def fingerprint(item: dict) -> str:
    return benchmarks.fingerprint(item, BENCHMARK_KEYS)


def known_versions() -> dict[str, dict[str, str]]:
    """Each item's fingerprint by id: the 2025-05-11 file, and the same with the six upstream fixes applied (the
    2026 jsonl's answers; tests/test_mmar.py rebuilds both)."""
    return benchmarks.fingerprint_tables("mmar_fingerprints.json")


def detect_version(items: list[dict]) -> dict:
    return benchmarks.versions_of(items, fingerprint, known_versions(), "MMAR")


def clip(item: dict, audio_dir: Path) -> Path:
    return audio_dir / item.get("audio_path", f"audio/{item['id']}.wav")


BENCHMARK = Benchmark(
    name="mmar",
    keys=("modality", "category", "sub-category"),
    groups=GROUPS,
    table_group="modality",
    floor_groups=("modality", "category"),
    order=ORDER,
    official_key="model_prediction",
    source_name="MMAR-meta.json",
    detect_version=detect_version,
    clip=clip,
    fixes=FIXES,
)
