"""Answer every question of a prepared benchmark file (MMAU, MMAR: recognised from its items) with one model, then
score it.

    python -m r1_aqa.evaluate --config configs/mmau_eval.yaml --model_name_or_path exp/model/checkpoint-100 \
        --benchmark_file data/MMAU/mmau-test-mini.prepared.json --output_dir exp/model/mmau/checkpoint-100

The model may be a LoRA checkpoint (merged into its base, see r1_aqa.models). The prompt style is the one the
checkpoint was trained with (its `resolved_config.yaml`), `answer` for a model without one; `--prompt_style` wins.

Writes, in `output_dir`: `settings.json` (what changes the answers, written first), `predictions.json` (every
original key, plus `model_output`, the raw completion, and `model_prediction`, the answer extracted from it, or the
whole completion when it has no <answer> tag, as R1-AQA stored it), `predictions_silence.json` (the same model with
each clip replaced by silence of the same length: how much it answers from the text alone) and `metrics.json` (both
scored fields, the headline named, and how many clips were cut to the model's limit).
`--shuffle_choices SEED` shows each item's choices in an order drawn from (SEED, item id) and writes into
`output_dir/shuffled-SEED/`, beside the original order's files, so `r1_aqa.summary` shows both: a model that answers
by position loses accuracy there. Predictions keep the items' own `choices` and `answer` (scoring compares texts).
Progress is appended to `*.partial.jsonl` after every batch, so a killed run resumes where it stopped; final files
are written atomically. A finished evaluation with the same settings is not redone ("done already"); one with other
settings is redone from scratch, its outputs moved aside into `superseded-N/`, none of them reused.
"""

import hashlib
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import soundfile
import torch
import yaml
from tqdm import tqdm
from transformers import set_seed
from trl import TrlParser

from r1_aqa.audio import SAMPLING_RATE, header_samples
from r1_aqa.benchmarks import BenchmarkError, checked, read_items, recognise
from r1_aqa.choice_order import shown_choices
from r1_aqa.families import family_of_processor
from r1_aqa.files import resume_jsonl, write_json
from r1_aqa.models import adapter_base, family_at, load_model, load_processor
from r1_aqa.processing import encode, load_clips
from r1_aqa.prompts import INSTRUCTIONS, answer_or_completion, messages
from r1_aqa.rewards import FORMATS
from r1_aqa.runs import RESOLVED_CONFIG
from r1_aqa.scoring import format_metrics, metrics_for

logger = logging.getLogger(__name__)
SETTINGS = "settings.json"
OUTPUTS = ("metrics.json", "predictions.json", "predictions_silence.json", "predictions.partial.jsonl",
           "predictions_silence.partial.jsonl")  # fmt: skip


@dataclass
class EvalArguments:
    model_name_or_path: str = field(metadata={"help": "model folder (a checkpoint-N) or hub id"})
    benchmark_file: str = field(
        metadata={"help": "made by `python -m r1_aqa.benchmarks prepare`", "aliases": ["--mmau_file"]}
    )
    output_dir: str = field(metadata={"help": "where predictions and metrics go"})
    prompt_style: str | None = field(
        default=None, metadata={"help": f"one of {sorted(INSTRUCTIONS)}; default: the checkpoint's, else answer"}
    )
    base_model_name_or_path: str | None = field(
        default=None, metadata={"help": "for a LoRA checkpoint: its base, if not where adapter_config.json says"}
    )
    chat_template_kwargs: dict | None = field(
        default=None, metadata={"help": "chat template variables (in the YAML); default: the checkpoint's training's"}
    )
    batch_size: int = 32
    max_new_tokens: int = 256
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 50
    seed: int = 42
    dtype: str = "bfloat16"
    attn_implementation: str | None = None
    silent_audio_floor: bool = field(default=True, metadata={"help": "also answer with every clip silenced"})
    fast_audio_encoder: bool = field(default=True, metadata={"help": "encode valid frames only (exact)"})
    shuffle_choices: int | None = field(
        default=None, metadata={"help": "seed: show choices in an order drawn per item; writes to shuffled-SEED/"}
    )

    def __post_init__(self):
        if self.prompt_style is not None and self.prompt_style not in INSTRUCTIONS:
            raise ValueError(f"prompt_style must be one of {sorted(INSTRUCTIONS)}, got {self.prompt_style!r}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")

    def decoding(self) -> dict:
        settings = {"max_new_tokens": self.max_new_tokens, "do_sample": self.do_sample}
        if self.do_sample:
            settings.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        return settings


def with_trained_prompt(args: EvalArguments) -> EvalArguments:
    """The prompt the checkpoint was trained with (style and chat template variables, from its resolved config),
    unless one is asked for; a style asked for that differs from the trained one is said."""
    config = Path(args.model_name_or_path) / RESOLVED_CONFIG
    run = yaml.safe_load(config.read_text()) if config.is_file() else {}
    trained = run.get("data", {}).get("prompt_style")
    if args.chat_template_kwargs is None and run.get("training", {}).get("chat_template_kwargs"):
        args = replace(args, chat_template_kwargs=run["training"]["chat_template_kwargs"])
    if args.prompt_style is None:
        return replace(args, prompt_style=trained or "answer")
    if trained and trained != args.prompt_style:
        print(f"warning: {args.model_name_or_path} was trained with prompt_style {trained!r}; scoring with "
              f"{args.prompt_style!r} as asked", file=sys.stderr)  # fmt: skip
    return args


def _local(path: str | None) -> str | None:
    """A folder by its absolute path (the same model reached from another directory), a hub id as it is."""
    return os.path.abspath(path) if path and os.path.exists(path) else path


def settings(args: EvalArguments, benchmark: str) -> dict:
    """Everything that changes the answers: an evaluation with other settings is another evaluation."""
    return {
        "model": _local(args.model_name_or_path),
        "base_model": _local(adapter_base(args.model_name_or_path, args.base_model_name_or_path)),
        "benchmark": benchmark,
        "benchmark_file_sha256": hashlib.sha256(Path(args.benchmark_file).read_bytes()).hexdigest(),
        "prompt_style": args.prompt_style,
        "chat_template_kwargs": args.chat_template_kwargs,
        "decoding": args.decoding(),
        "seed": args.seed,
        "dtype": args.dtype,
        "attn_implementation": args.attn_implementation,
        "batch_size": args.batch_size,  # other batches round differently, so greedy answers can differ a little
        "fast_audio_encoder": args.fast_audio_encoder,
        "silent_audio_floor": args.silent_audio_floor,
        "shuffle_choices": args.shuffle_choices,
    }


def start(output_dir: Path, wanted: dict) -> bool:
    """False when this evaluation is finished already. Otherwise outputs of other settings are moved aside into
    `superseded-N/` (their predictions and partial files must not be mixed into this one, and hours of inference
    are not deleted for a changed option), and these settings are recorded first."""
    path = output_dir / SETTINGS
    finished = (output_dir / "metrics.json").is_file()
    recorded = json.loads(path.read_text()) if path.is_file() else None
    if recorded == wanted:
        if finished:
            print(f"done already: {output_dir / 'metrics.json'}")
            return False
        return True  # unfinished with the same settings: resume
    left = [output_dir / name for name in (SETTINGS, *OUTPUTS) if (output_dir / name).is_file()]
    if recorded is not None and left:
        changed = [key for key in {**recorded, **wanted} if recorded.get(key) != wanted.get(key)]
        aside = next(
            output_dir / f"superseded-{n}" for n in range(1, 10**6) if not (output_dir / f"superseded-{n}").exists()
        )
        aside.mkdir()
        for output in left:
            output.rename(aside / output.name)
        print(f"{output_dir}: scored before with other settings ({', '.join(changed)}), moved to {aside}; "
              "scoring again from scratch")  # fmt: skip
    write_json(path, wanted)
    return True


def read_partial(path: Path) -> dict[str, str]:
    """Outputs saved so far, by id (a last line cut short by a kill is dropped: its item is redone)."""
    return {key: record["model_output"] for key, record in resume_jsonl(path).items()}


def load_for_generation(args) -> tuple:
    """(model on the GPU if there is one, in eval mode; its processor, text left-padded for batched generation), for
    evaluation and pass rates alike: `args` has model_name_or_path, dtype, attn_implementation, fast_audio_encoder and
    base_model_name_or_path."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model(args.model_name_or_path, args.dtype, args.attn_implementation,
                       fast_audio_encoder=args.fast_audio_encoder,
                       base_model_name_or_path=args.base_model_name_or_path).to(device).eval()  # fmt: skip
    processor = load_processor(args.model_name_or_path, padding_side="left",
                               base_model_name_or_path=args.base_model_name_or_path)  # fmt: skip
    return model, processor


@torch.no_grad()
def generate(model, processor, conversations: list, clips: list, decoding: dict, chat_template_kwargs=None) -> list:
    family = family_of_processor(processor)
    inputs = encode(processor, conversations, clips, chat_template_kwargs).to(model.device)
    for key in family.audio_keys:  # the features in the model's dtype; masks stay integers
        if inputs[key].is_floating_point():
            inputs[key] = inputs[key].to(model.dtype)
    output = model.generate(**inputs, **decoding, pad_token_id=processor.tokenizer.pad_token_id,
                            suppress_tokens=family.placeholder_ids(processor.tokenizer))  # fmt: skip
    return processor.batch_decode(output[:, inputs["input_ids"].size(1) :], skip_special_tokens=True)


def prediction(item: dict, output: str) -> dict:
    """An item as the official scripts read it: its keys, the completion and the answer scored by default."""
    kept = {k: v for k, v in item.items() if k != "audio_path"}
    return {**kept, "model_output": output, "model_prediction": answer_or_completion(output)}


def choices_shown(item: dict, seed: int | None) -> list[str]:
    """The item's choices in the order its prompt shows them: its own, or drawn from (seed, item id)."""
    return item["choices"] if seed is None else shown_choices(item["choices"], seed, 0, item["id"])


def cut_clips(items: list[dict], max_seconds: float) -> dict:
    """Clips longer than the model hears: the audio loader cuts them to their first `max_seconds` (the family's
    limit), as in training."""
    cut = [item["id"] for item in items if header_samples(item["audio_path"]) > max_seconds * SAMPLING_RATE]
    return {"count": len(cut), "max_seconds": max_seconds, "ids": cut}


def answer_all(model, processor, items: list[dict], args: EvalArguments, destination: Path, silent: bool) -> list:
    """Predictions for every item, resumed from `destination`'s partial file; writes `destination` at the end."""
    if destination.is_file():  # finished before this run was killed (e.g. in the silent pass): keep it
        finished = read_items(destination, "predictions file")
        if [p["id"] for p in finished] == [item["id"] for item in items]:
            logger.info("%s: complete already, kept", destination)
            return finished
    partial = destination.with_suffix(".partial.jsonl")
    done = read_partial(partial)
    # Clips of similar length batched together: the audio encoder then runs to each batch's longest clip only.
    todo = sorted(
        (item for item in items if item["id"] not in done), key=lambda i: soundfile.info(i["audio_path"]).frames
    )
    if done:
        logger.info("%s: resuming, %d of %d items already answered", destination, len(items) - len(todo), len(items))
    description = f"{destination.parent.name}/{destination.stem}"
    with open(partial, "a", encoding="utf-8") as progress, tqdm(total=len(items), initial=len(done),
                                                                  desc=description, unit="clip") as bar:  # fmt: skip
        for start in range(0, len(todo), args.batch_size):
            batch = todo[start : start + args.batch_size]
            conversations = [
                messages(i["audio_path"], i["question"], choices_shown(i, args.shuffle_choices), args.prompt_style)
                for i in batch
            ]
            clips = load_clips(conversations, family_of_processor(processor).max_seconds)
            if silent:
                clips = [np.zeros_like(clip) for clip in clips]
            outputs = generate(model, processor, conversations, clips, args.decoding(), args.chat_template_kwargs)
            for item, output in zip(batch, outputs, strict=True):
                done[item["id"]] = output
                progress.write(json.dumps({"id": item["id"], "model_output": output}, ensure_ascii=False) + "\n")
            progress.flush()
            os.fsync(progress.fileno())
            bar.update(len(batch))
    predictions = [prediction(item, done[item["id"]]) for item in items]
    write_json(destination, predictions)
    partial.unlink()
    return predictions


def main(args: EvalArguments) -> dict:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = with_trained_prompt(args)
    items = read_items(args.benchmark_file, "prepared benchmark file")
    benchmark = recognise(items, args.benchmark_file)
    checked(items, args.benchmark_file, benchmark)
    missing = [item["id"] for item in items if "audio_path" not in item]
    if missing:
        raise BenchmarkError(f"{args.benchmark_file}: no audio_path for {', '.join(missing[:10])}; run "
                             "`python -m r1_aqa.benchmarks prepare`")  # fmt: skip
    output_dir = Path(args.output_dir)
    if args.shuffle_choices is not None:  # beside the original order's outputs, which other settings would move aside
        output_dir = output_dir / f"shuffled-{args.shuffle_choices}"
    output_dir.mkdir(parents=True, exist_ok=True)
    if (output_dir / "metrics.json").is_file() and not (output_dir / SETTINGS).is_file():
        return rescored(output_dir, benchmark, items, args)
    if not start(output_dir, settings(args, benchmark.name)):
        return json.loads((output_dir / "metrics.json").read_text())
    set_seed(args.seed)
    model, processor = load_for_generation(args)
    predictions = answer_all(model, processor, items, args, output_dir / "predictions.json", silent=False)
    silence = None
    if args.silent_audio_floor:
        silence = answer_all(model, processor, items, args, output_dir / "predictions_silence.json", silent=True)
    return write_metrics(output_dir, benchmark, items, predictions, silence, args)


def write_metrics(output_dir: Path, benchmark, items, predictions, silence, args: EvalArguments) -> dict:
    metrics = metrics_for(benchmark, predictions, silence)
    family = family_at(args.model_name_or_path, base_model_name_or_path=args.base_model_name_or_path)
    metrics["cut_clips"] = cut_clips(items, family.max_seconds)
    pattern = FORMATS[args.prompt_style]
    matching = sum(pattern.fullmatch(p["model_output"]) is not None for p in predictions)
    metrics["format"] = {"matching": matching, "count": len(predictions), "rate": 100.0 * matching / len(predictions)}
    metrics.update(model=args.model_name_or_path, prompt_style=args.prompt_style, decoding=args.decoding(),
                   evaluation=asdict(args))  # fmt: skip
    write_json(output_dir / "metrics.json", metrics)
    print(format_metrics(metrics, benchmark.floor_groups))
    return metrics


def rescored(output_dir: Path, benchmark, items: list[dict], args: EvalArguments) -> dict:
    """A folder an earlier version scored (no settings recorded): its answers are kept, and scored again as this
    version scores (both fields, the headline `answer`), so that its row compares with the new ones."""
    answers = output_dir / "predictions.json"
    if not answers.is_file():
        print(f"done already: {output_dir / 'metrics.json'} (settings not recorded then; move it away to rescore)")
        return json.loads((output_dir / "metrics.json").read_text())
    predictions = read_items(answers, "predictions file")
    silent = output_dir / "predictions_silence.json"
    silence = read_items(silent, "predictions file") if silent.is_file() else None
    print(f"done already: {output_dir} (scored by an earlier version: its answers scored again, no inference)")
    return write_metrics(output_dir, benchmark, items, predictions, silence, args)


if __name__ == "__main__":
    try:
        main(*TrlParser((EvalArguments,)).parse_args_and_config())
    except BenchmarkError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
