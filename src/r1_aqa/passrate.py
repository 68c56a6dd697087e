"""Pass rates of a model on training items, and training files filtered by them.

    python -m r1_aqa.passrate --config configs/r1_aqa_qwen2_audio_7b.yaml --model exp/model --samples 8 \
        --output exp/model/passrate.jsonl --filtered_output data/AVQA/train_qa.learnable.jsonl \
        --drop_unsolved true --drop_solved true
    python -m r1_aqa.passrate --config configs/audio_contribution_split.yaml      # the weak / strong split

Each item's prompt is the one GRPO trains on (r1_aqa.data.to_grpo_row, with the recipe's prompt_style and
question_video_to_audio) and is sampled `num_generations` (G) times with the recipe's sampling settings; `--config`
accepts a GRPO recipe and reads the keys it shares with these arguments. An item's pass rate is the share of its G
completions that `pass_reward` (`accuracy`: the correct choice's text in the last <answer>) scores 1; the mean of
each of `reward_funcs` is written beside it.

Writes `output` (one JSON line per item: id, passes, samples, pass_rate, rewards), its `*.settings.json` (written
first) and, when asked, training files of the selected rows, unchanged (r1_aqa.subsets): `filtered_output` (drop
pass rate 0 and/or 1, or order easy-to-hard for a curriculum) and, with `silent_audio` (each clip replaced by
silence of its length, as evaluation's silent pass), `weak_output` / `strong_output`: items answered correctly
without audio in at least `weak_min_passes` of G samples, and the others. Progress is appended to
`*.partial.jsonl` after every batch, so a killed run resumes where it stopped; a finished one is reused, so another
filter costs no generation.
"""

import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm
from transformers import set_seed
from trl import TrlParser

from r1_aqa import subsets
from r1_aqa.audio import header_samples
from r1_aqa.data import DataError, load_rows, to_grpo_row
from r1_aqa.evaluate import generate, load_for_generation, with_trained_prompt
from r1_aqa.families import family_of_processor
from r1_aqa.files import resume_jsonl, write_json, write_jsonl
from r1_aqa.models import adapter_base, family_at
from r1_aqa.processing import load_clips
from r1_aqa.prompts import INSTRUCTIONS
from r1_aqa.rewards import REWARDS, get_rewards

logger = logging.getLogger(__name__)


@dataclass
class PassRateArguments:
    model_name_or_path: str = field(metadata={"help": "model folder (a LoRA checkpoint too) or hub id",
                                              "aliases": ["--model"]})  # fmt: skip
    data_file: str = field(metadata={"help": "training JSON lines", "aliases": ["--data"]})
    output: str | None = field(
        default=None, metadata={"help": "pass rates; default: <data>.passrate[_silence].jsonl beside the data"}
    )
    num_generations: int = field(default=8, metadata={"help": "samples per item (G)", "aliases": ["--samples"]})
    prompt_style: str | None = field(
        default=None, metadata={"help": f"one of {sorted(INSTRUCTIONS)}; default: the checkpoint's, else answer"}
    )
    question_video_to_audio: bool = field(default=True, metadata={"help": "as in training"})
    chat_template_kwargs: dict | None = field(default=None, metadata={"help": "as in training (in the YAML)"})
    base_model_name_or_path: str | None = field(default=None, metadata={"help": "a LoRA checkpoint's base"})
    reward_funcs: list[str] = field(default_factory=lambda: ["accuracy", "format"])
    pass_reward: str = field(default="accuracy", metadata={"help": "a completion passes when this reward is 1"})
    think_budget_words: int = field(default=50, metadata={"help": "the think_length reward's budget, as in training"})
    max_completion_length: int = field(default=256, metadata={"aliases": ["--max_new_tokens"]})
    temperature: float = 1.0
    top_k: int = 50
    top_p: float = 1.0
    batch_size: int = field(default=4, metadata={"help": "items per generate call (x G sequences)"})
    seed: int = 42
    dtype: str = "bfloat16"
    attn_implementation: str | None = None
    fast_audio_encoder: bool = True
    silent_audio: bool = field(default=False, metadata={"help": "replace each clip by silence of its length"})
    filtered_output: str | None = field(default=None, metadata={"help": "training file of the selected items"})
    drop_unsolved: bool = field(default=False, metadata={"help": "filtered_output without pass rate 0"})
    drop_solved: bool = field(default=False, metadata={"help": "filtered_output without pass rate 1"})
    order: str = field(default="original", metadata={"help": f"filtered_output's order, one of {subsets.ORDERS}"})
    weak_output: str | None = field(default=None, metadata={"help": "with silent_audio: the weak subset"})
    strong_output: str | None = field(default=None, metadata={"help": "with silent_audio: the strong subset"})
    weak_min_passes: int | None = field(
        default=None, metadata={"help": "k: weak when right without audio in >= k of G samples; default G"}
    )

    def __post_init__(self):
        if self.prompt_style is not None and self.prompt_style not in INSTRUCTIONS:
            raise ValueError(f"prompt_style must be one of {sorted(INSTRUCTIONS)}, got {self.prompt_style!r}")
        unknown = [name for name in [*self.reward_funcs, self.pass_reward] if name not in REWARDS]
        if unknown:
            raise ValueError(f"unknown reward(s) {unknown}; known: {sorted(REWARDS)}")
        if self.num_generations < 1 or self.batch_size < 1:
            raise ValueError("num_generations and batch_size must be at least 1")
        if self.order not in subsets.ORDERS:
            raise ValueError(f"order must be one of {subsets.ORDERS}, got {self.order!r}")
        rule = self.drop_unsolved or self.drop_solved or self.order != "original"
        if bool(self.filtered_output) != rule:
            raise ValueError("filtered_output and a rule (drop_unsolved, drop_solved, order) go together")
        if (self.weak_output or self.strong_output) and not self.silent_audio:
            raise ValueError("weak_output / strong_output split by pass rates without audio: set silent_audio")
        if self.weak_min_passes is None:
            self.weak_min_passes = self.num_generations  # a guess is rarely right G times in a row
        if not 1 <= self.weak_min_passes <= self.num_generations:
            raise ValueError(f"weak_min_passes must be 1..{self.num_generations}, got {self.weak_min_passes}")
        if self.output is None:
            data = Path(self.data_file)
            suffix = "_silence" if self.silent_audio else ""
            self.output = str(data.with_name(f"{data.stem}.passrate{suffix}.jsonl"))

    def decoding(self) -> dict:
        return {"max_new_tokens": self.max_completion_length, "do_sample": True, "temperature": self.temperature,
                "top_k": self.top_k, "top_p": self.top_p, "num_return_sequences": self.num_generations}  # fmt: skip


def settings(args: PassRateArguments) -> dict:
    """Everything that changes the pass rates: rates measured with other settings are not resumed or reused."""
    base = adapter_base(args.model_name_or_path, args.base_model_name_or_path)
    local = [
        os.path.abspath(path) if path and os.path.exists(path) else path for path in (args.model_name_or_path, base)
    ]
    kept = ("prompt_style", "question_video_to_audio", "chat_template_kwargs", "reward_funcs", "pass_reward",
            "think_budget_words", "seed", "dtype", "attn_implementation", "batch_size", "fast_audio_encoder",
            "silent_audio")  # fmt: skip
    return {
        "model": local[0],
        "base_model": local[1],
        "data_file_sha256": hashlib.sha256(Path(args.data_file).read_bytes()).hexdigest(),
        "decoding": args.decoding(),
        **{key: getattr(args, key) for key in kept},  # batch_size: batches are seeded one by one
    }


def start(output: Path, wanted: dict) -> bool:
    """False when `output` holds these settings' pass rates already; refuses files of other settings."""
    path, partial = output.with_suffix(".settings.json"), output.with_suffix(".partial.jsonl")
    recorded = json.loads(path.read_text()) if path.is_file() else None
    left = [name for name in (output, partial) if name.is_file()]
    if left and recorded != wanted:
        changed = [key for key in wanted if (recorded or {}).get(key) != wanted[key]]
        raise DataError(f"{left[0]} holds pass rates of other settings ({', '.join(changed) or 'not recorded'}); "
                        "remove it or give another --output")  # fmt: skip
    if recorded == wanted and output.is_file():
        return False
    write_json(path, wanted)
    return True


def score(row: dict, completions: list[str], passing, rewards: dict) -> dict:
    """One item's record: how many of its completions pass, and each reward's mean, given TRL's columns."""
    columns = {key: [value] * len(completions) for key, value in row.items() if key != "prompt"}
    passes = sum(value == 1.0 for value in passing(completions, prompts=[row["prompt"]] * len(completions), **columns))
    means = {name: float(np.mean(reward(completions, prompts=[row["prompt"]] * len(completions), **columns)))
             for name, reward in rewards.items()}  # fmt: skip
    return {"id": row["id"], "passes": int(passes), "samples": len(completions),
            "pass_rate": passes / len(completions), "rewards": means}  # fmt: skip


def measure(model, processor, rows: list[dict], args: PassRateArguments, output: Path) -> list[dict]:
    """Pass-rate records of every row (to_grpo_row's columns), in the rows' order, resumed from the partial file."""
    partial = output.with_suffix(".partial.jsonl")
    done = resume_jsonl(partial)
    style = args.prompt_style
    passing = get_rewards([args.pass_reward], style, args.think_budget_words)[0]
    rewards = dict(zip(args.reward_funcs, get_rewards(args.reward_funcs, style, args.think_budget_words), strict=True))
    # Clips of similar length batched together (the audio encoder runs to a batch's longest clip). The batches are
    # fixed by the data and each is seeded by its number, so a resumed run samples what an unbroken one would.
    lengths = [header_samples(row["prompt"][0]["content"][0]["audio_url"]) for row in rows]
    order = sorted(range(len(rows)), key=lambda index: (lengths[index], index))
    batches = [order[first : first + args.batch_size] for first in range(0, len(order), args.batch_size)]
    if done:
        logger.info("%s: resuming, %d of %d items measured already", output, len(done), len(rows))
    with open(partial, "a", encoding="utf-8") as progress, tqdm(total=len(rows), initial=len(done),
                                                                  desc=output.stem, unit="item") as bar:  # fmt: skip
        for number, batch in enumerate(batches):
            todo = [rows[index] for index in batch if rows[index]["id"] not in done]
            if not todo:
                continue
            set_seed(args.seed + number)
            conversations = [row["prompt"] for row in todo]
            clips = load_clips(conversations, family_of_processor(processor).max_seconds)
            if args.silent_audio:
                clips = [np.zeros_like(clip) for clip in clips]
            outputs = generate(model, processor, conversations, clips, args.decoding(), args.chat_template_kwargs)
            size = args.num_generations
            for position, row in enumerate(todo):
                record = score(row, outputs[position * size : (position + 1) * size], passing, rewards)
                done[row["id"]] = record
                progress.write(json.dumps(record, ensure_ascii=False) + "\n")
            progress.flush()
            os.fsync(progress.fileno())
            bar.update(len(todo))
    records = [done[row["id"]] for row in rows]
    write_jsonl(output, records)
    partial.unlink()
    return records


def check_model(path: str) -> None:
    """A model path that is not there, named, instead of the hub's complaint about a repository id."""
    if not os.path.isdir(path) and (os.path.isabs(path) or path.startswith(".") or path.count("/") != 1):
        raise DataError(f"{path}: no such model folder")


def write_subsets(args: PassRateArguments, records: list[dict]) -> None:
    if args.filtered_output:
        ids = subsets.select(records, args.drop_unsolved, args.drop_solved, args.order)
        subsets.write_rows(args.data_file, ids, args.filtered_output)
        print(f"{len(ids)} of {len(records)} items written to {args.filtered_output}")
    if args.weak_output or args.strong_output:
        weak, strong = subsets.split(records, args.weak_min_passes)
        for ids, name, path in ((weak, "weak", args.weak_output), (strong, "strong", args.strong_output)):
            if path:
                subsets.write_rows(args.data_file, ids, path)
            print(f"{name} audio contribution: {len(ids)} items{f' written to {path}' if path else ''}")


def main(args: PassRateArguments) -> list[dict]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    check_model(args.model_name_or_path)
    args = with_trained_prompt(args)  # the checkpoint's prompt style, as evaluation reads it
    min_samples = family_at(args.model_name_or_path, base_model_name_or_path=args.base_model_name_or_path).min_samples
    rows = [to_grpo_row(row, args.prompt_style, args.question_video_to_audio)
            for row in load_rows(args.data_file, min_samples=min_samples)]  # fmt: skip
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    if start(output, settings(args)):
        model, processor = load_for_generation(args)
        records = measure(model, processor, rows, args, output)
    else:
        print(f"measured already: {output}")
        records = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    rates = [record["pass_rate"] for record in records]
    print(f"{len(records)} items, mean pass rate {np.mean(rates):.3f}, at 0: {rates.count(0.0)}, at 1: "
          f"{rates.count(1.0)} (no learning signal in GRPO) -> {output}")  # fmt: skip
    write_subsets(args, records)
    return records


def cli(argv: list[str] | None = None) -> int:
    # A GRPO recipe is a welcome --config: its keys these arguments lack (learning_rate, ...) are ignored.
    (args,) = TrlParser((PassRateArguments,)).parse_args_and_config(argv, fail_with_unknown_args=False)
    try:
        main(args)
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(cli())
