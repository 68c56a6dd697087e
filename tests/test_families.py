"""What must hold for every model family (r1_aqa.families), on each family's tiny random model: one GRPO step trains
all that should train and nothing else, the trainer's log-probs are a plain forward's, each completion hears its own
prompt's clip (also when a clip is several feature rows), and a training checkpoint loads with plain transformers."""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import training_row, write_clip, write_jsonl
from datasets import Dataset
from test_evaluate import prepare_six
from trl import GRPOConfig, SFTConfig, SFTTrainer

from r1_aqa import tiny
from r1_aqa.data import DataError, load_rows, to_grpo_row
from r1_aqa.evaluate import generate
from r1_aqa.families import FAMILIES, family_of, family_of_processor
from r1_aqa.models import AudioModelConfig, load_model, load_processor, lora_config
from r1_aqa.processing import encode_rows, join_rows
from r1_aqa.prompts import completion_text
from r1_aqa.runs import DataArguments, build_dataset
from r1_aqa.sft import IGNORE, AudioSFTCollator
from r1_aqa.trainer import AudioGRPOTrainer

ROOT = Path(__file__).resolve().parents[1]
NAMES = sorted(FAMILIES)


@pytest.fixture(scope="session")
def family_dirs(tmp_path_factory):
    """One tiny model folder per family, built on first use, laid out like the family's published checkpoint."""
    built = {}

    def folder(name: str) -> str:
        if name not in built:
            built[name] = tiny.build(str(tmp_path_factory.mktemp(f"tiny-{name}")), name)
        return built[name]

    return folder


def length_reward(completions, **kwargs):
    """Varies within every group (a random model's real rewards are all 0, so nothing would learn)."""
    return [float(len(completion_text(c))) for c in completions]


def make_trainer(model_dir, rows, output_dir, peft_config=None, **overrides):
    settings = dict(output_dir=str(output_dir), use_cpu=True, bf16=False, gradient_checkpointing=False,
                    per_device_train_batch_size=8, num_generations=4, max_completion_length=8, temperature=1.0,
                    learning_rate=1e-3, max_steps=1, beta=0.04, loss_type="grpo", report_to="none",
                    save_strategy="no", logging_steps=1, seed=0)  # fmt: skip
    settings.update(overrides)
    return AudioGRPOTrainer(
        model=load_model(model_dir, "float32"),  # as training loads it: frozen modules, the family's savings
        processing_class=load_processor(model_dir),
        reward_funcs=[length_reward],
        args=GRPOConfig(**settings),
        train_dataset=Dataset.from_list(rows),
        peft_config=peft_config,
    )


def clip_rows(tmp_path, seconds, kinds=("tone", "noise")) -> list[dict]:
    rows = []
    for index, (duration, kind) in enumerate(zip(seconds, kinds, strict=True)):
        write_clip(tmp_path / f"c{index}.wav", duration, kind, 400.0 + 200 * index, seed=index)
        rows.append(training_row(index, f"c{index}.wav", answer=index))
    return [to_grpo_row(row, "answer", True) for row in load_rows(write_jsonl(tmp_path / "rows.jsonl", rows))]


def two_lengths(model_dir) -> tuple[float, float]:
    """A short and a long clip; where the family cuts clips into windows, the long one spans two (5 s and 45 s)."""
    family, processor = family_of(model_dir), load_processor(model_dir)
    return (5.0, 45.0) if family.rows_of(processor, 45 * 16_000) > 1 else (1.0, 2.0)


def rollout(trainer, rows_per_prompt):
    """One generation batch as the trainer builds it (each prompt repeated num_generations times), its audio joined."""
    inputs = [row for row in rows_per_prompt for _ in range(trainer.num_generations)]
    torch.manual_seed(0)
    output = trainer._generate_and_score_completions(inputs)
    audio, rows = join_rows({key: output[key] for key in trainer.family.audio_keys})
    ids = torch.cat([output["prompt_ids"], output["completion_ids"]], dim=1)
    mask = torch.cat([output["prompt_mask"], output["completion_mask"]], dim=1)
    return inputs, output, ids, mask, audio, rows


def trainer_logps(trainer, ids, mask, audio, rows, logits_to_keep):
    trainer._batch_audio, trainer._batch_rows = audio, rows
    try:
        with torch.no_grad():
            return trainer._get_per_token_logps_and_entropies(trainer.model, ids, mask, logits_to_keep, batch_size=3)[0]
    finally:
        trainer._batch_audio = trainer._batch_rows = None


def stock(model):
    """The model as transformers runs it: a copy without the family's savings."""
    model = copy.deepcopy(model)
    family = family_of(model)
    if family.disable_savings is not None:
        family.disable_savings(model)
    return model


def plain_logps(model, ids, mask, audio, logits_to_keep):
    """Per-token log-probs of the completions from one ordinary forward pass."""
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask, **audio).logits
    logps = logits[:, -logits_to_keep - 1 : -1].float().log_softmax(-1)
    return logps.gather(-1, ids[:, -logits_to_keep:, None]).squeeze(-1)


def same_clip(fed: dict, own: dict) -> bool:
    """Whether the audio fed for a sequence is its own clip's: equal masks and equal features on every valid frame.
    A family that pads to the batch's longest clip pads a clip encoded alone less, so only valid frames compare."""
    (mask_key,) = [key for key, value in own.items() if not value.is_floating_point()]
    mask, fed_mask = own[mask_key], fed[mask_key]
    frames = mask.size(-1)
    if fed_mask.shape[:-1] != mask.shape[:-1] or fed_mask.size(-1) < frames:
        return False
    if not torch.equal(fed_mask[..., :frames], mask) or fed_mask[..., frames:].any():
        return False
    valid = mask.bool().unsqueeze(1)  # (rows, 1, frames) against features (rows, mel bins, frames)
    return all(
        torch.equal(fed[key][..., :frames].masked_select(valid), value.masked_select(valid))
        for key, value in own.items()
        if key != mask_key
    )


def alone(processor, prompt) -> tuple[dict, torch.Tensor]:
    """A prompt's audio tensors and input_ids, encoded on its own (nothing shared with a batch)."""
    encoded, _ = encode_rows(processor, [prompt])
    return {key: encoded[key] for key in family_of_processor(processor).audio_keys}, encoded["input_ids"][0]


@pytest.mark.parametrize("name", NAMES)
def test_one_step_trains_every_trainable_parameter_and_no_frozen_one(name, family_dirs, tmp_path):
    model_dir = family_dirs(name)
    trainer = make_trainer(model_dir, clip_rows(tmp_path, (1.0, 1.0)), tmp_path / "out")
    family = trainer.family
    assert type(trainer.ref_model) is family.model_class  # why: upstream would build it from `architectures`
    frozen = {n for module in family.frozen_modules for n, _ in trainer.model.get_submodule(module).named_parameters(
        prefix=module)}  # fmt: skip
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    trainer.train()
    after = dict(trainer.model.named_parameters())
    trainable = [n for n, p in after.items() if p.requires_grad]
    assert trainable and not frozen & set(trainable), "a frozen module is trainable"
    unchanged = [n for n in trainable if torch.equal(before[n], after[n].detach())]
    assert not unchanged, f"{len(unchanged)} trainable parameters did not change: {unchanged[:5]}"
    assert all(torch.equal(before[n], after[n].detach()) for n in frozen), "a frozen parameter changed"
    in_optimizer = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not {id(after[n]) for n in frozen} & in_optimizer, "a frozen parameter is in the optimizer"
    if family.frozen_modules:  # why: the vision tower is there, so the check above could have failed
        assert frozen


@pytest.mark.parametrize("name", NAMES)
def test_logps_equal_a_plain_forward_and_depend_on_the_clip(name, family_dirs, tmp_path):
    rows = clip_rows(tmp_path, (1.0, 1.0))  # equal lengths, so that the clips can be swapped
    trainer = make_trainer(family_dirs(name), rows, tmp_path / "out")
    _, output, ids, mask, audio, seq_rows = rollout(trainer, rows[:1])
    keep = output["completion_ids"].size(1)
    completion = output["completion_mask"].bool()
    logps = trainer_logps(trainer, ids, mask, audio, seq_rows, keep)
    reference = stock(trainer.model)
    plain = plain_logps(reference, ids, mask, audio, keep)
    assert torch.allclose(logps[completion], plain[completion], atol=1e-5)

    other, _ = alone(trainer.processing_class, rows[1]["prompt"])
    swapped = {key: torch.cat([value] * ids.size(0)) for key, value in other.items()}
    moved = plain_logps(reference, ids, mask, swapped, keep)
    assert (logps[completion] - moved[completion]).abs().max() > 1e-4, "the log-probs do not depend on the clip"


@pytest.mark.parametrize("name", NAMES)
def test_each_completion_is_scored_with_its_own_prompts_clip(name, family_dirs, tmp_path):
    model_dir = family_dirs(name)
    rows = clip_rows(tmp_path, two_lengths(model_dir))  # 2 prompts x 4 generations: the 8 rows of one batch
    # 2 micro-batches of 4 per generation: upstream shuffles the 8 rows, then splits them.
    trainer = make_trainer(model_dir, rows, tmp_path / "out", per_device_train_batch_size=4,
                           gradient_accumulation_steps=2)  # fmt: skip
    inputs, output, ids, mask, audio, seq_rows = rollout(trainer, rows)
    keep = output["completion_ids"].size(1)
    logps = trainer_logps(trainer, ids, mask, audio, seq_rows, keep)
    processor, reference = trainer.processing_class, stock(trainer.model)
    own = [alone(processor, row["prompt"]) for row in rows]
    starts = [0, *torch.tensor(seq_rows).cumsum(0).tolist()]
    for row in range(len(inputs)):
        clip_audio, clip_ids = own[row // trainer.num_generations]
        fed = {key: value[starts[row] : starts[row + 1]] for key, value in audio.items()}
        assert same_clip(fed, clip_audio), f"row {row} carries another clip"
        # One completion alone, with its clip encoded independently of the trainer.
        single = plain_logps(reference, ids[row : row + 1], mask[row : row + 1], clip_audio, keep)[0]
        valid = output["completion_mask"][row].bool()
        assert torch.allclose(logps[row][valid], single[valid], atol=1e-5), row
    windows = [own[index][0][trainer.family.audio_keys[0]].size(0) for index in range(2)]
    assert len(set(map(len, [own[0][1], own[1][1]]))) == 2, "the two prompts must differ in length"

    # Through upstream's shuffle and split into micro-batches, each sequence keeps its own clip's rows.
    trainer.model.train()
    torch.manual_seed(1)
    trainer._prepare_inputs(inputs)
    micro_batches = trainer._buffered_inputs
    assert [batch["prompt_ids"].size(0) for batch in micro_batches] == [4, 4]
    for batch in micro_batches:
        for index in range(batch["prompt_ids"].size(0)):
            prompt = batch["prompt_ids"][index][batch["prompt_mask"][index].bool()]
            match = [i for i, (_, clip_ids) in enumerate(own) if torch.equal(clip_ids, prompt)]
            assert len(match) == 1, "a sequence's prompt is neither prompt"
            fed = {key: batch[key][index].cpu() for key in trainer.family.audio_keys}
            assert same_clip(fed, own[match[0]][0]), f"sequence {index} lost its clip in the shuffle or split"
            assert not same_clip(fed, own[1 - match[0]][0])  # why: the check tells the two clips apart
    if max(windows) > 1:  # why: a family with windows must have been tested with a clip of several
        assert sorted(windows) == [1, 2]


@pytest.mark.parametrize("name", NAMES)
def test_a_training_checkpoint_loads_with_plain_transformers(name, family_dirs, tmp_path):
    model_dir = family_dirs(name)
    trainer = make_trainer(model_dir, clip_rows(tmp_path, (1.0, 1.0)), tmp_path / "out", save_strategy="steps",
                           save_steps=1)  # fmt: skip
    trainer.train()
    checkpoint = tmp_path / "out" / "checkpoint-1"
    family = trainer.family
    plain, info = family.model_class.from_pretrained(str(checkpoint), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    trained = trainer.model.state_dict()
    assert all(torch.equal(value, trained[key]) for key, value in plain.state_dict().items())
    assert family_of(str(checkpoint)) is family
    processor = load_processor(str(checkpoint))
    assert type(processor) is type(trainer.processing_class)
    reloaded = load_model(str(checkpoint), "float32")
    assert type(reloaded) is family.model_class

    # Resuming without DeepSpeed restores the checkpoint's weights (a mixture of experts saves its fused experts one
    # tensor per expert: renaming alone would not fit them).
    resumed = make_trainer(model_dir, clip_rows(tmp_path, (1.0, 1.0)), tmp_path / "again")
    initial = {key: value.clone() for key, value in resumed.model.state_dict().items()}
    resumed._load_from_checkpoint(str(checkpoint))
    restored = resumed.model.state_dict()
    assert all(torch.equal(restored[key], value) for key, value in trained.items())
    assert any(not torch.equal(initial[key], value) for key, value in trained.items())  # why: the step moved them


def test_families_are_found_by_model_type_and_processor():
    for name, family in FAMILIES.items():
        for model_type in family.model_types:
            assert family_of(model_type) is family, (name, model_type)
    with pytest.raises(ValueError, match="not a known audio-language model"):
        family_of("llama")


def family_words() -> set[str]:
    """Every name by which code could single out a family: registry names, model types, class names."""
    words = set()
    for family in FAMILIES.values():
        words |= {family.name, *family.model_types, family.model_class.__name__, family.processor_class.__name__}
    return words | {"qwen", "omni", "flamingo", "af3", "whisper"}


def test_no_module_outside_the_families_names_a_family():
    """The trainer, evaluation, scripts and benchmarks (bench/) read the registry; only r1_aqa/families/ knows a family.
    Recipe file names in usage lines (configs/*.yaml) are paths, not branches, and are left out of the search."""
    pattern = re.compile("|".join(re.escape(word) for word in sorted(family_words(), key=len, reverse=True)), re.I)
    found = []
    for path in sorted([*(ROOT / "src" / "r1_aqa").glob("*.py"), *(ROOT / "bench").glob("*.py")]):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            line = re.sub(r"configs/\S+\.yaml", "", line)
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "a module outside r1_aqa/families names a family:\n" + "\n".join(found)


def launch(env_overrides: dict, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "CONFIG": "configs/tiny_grpo.yaml", "MIXED_PRECISION": "no",
           "NUM_GPUS": "2", "MASTER_PORT": "29533", "WANDB_MODE": "offline", **env_overrides}  # fmt: skip
    result = subprocess.run(["bash", str(ROOT / "run_grpo.sh"), *args], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


@pytest.mark.slow
@pytest.mark.parametrize("name", [name for name in NAMES if FAMILIES[name].frozen_modules])
def test_run_grpo_trains_two_processes_under_zero3_checkpoints_and_resumes(name, family_dirs, train_file, tmp_path):
    """The launcher's real path (accelerate + DeepSpeed ZeRO-3, 2 CPU processes) on a family with a frozen module:
    ZeRO sees no trainable parameter without a gradient."""
    out = tmp_path / "run"
    env = {"MODEL_NAME_OR_PATH": family_dirs(name), "DATA_FILE": str(train_file), "OUTPUT_DIR": str(out),
           "ACCELERATE_CONFIG": "configs/accelerate/zero3.yaml"}  # fmt: skip
    launch(env, "--save_steps", "2")
    checkpoint = out / "checkpoint-2"
    assert (checkpoint / "resolved_config.yaml").is_file()
    assert any(checkpoint.glob("global_step2/*optim_states.pt")), "no optimizer state: the run could not resume"
    result = launch({**env, "RESUME": "1"}, "--max_steps", "3", "--save_steps", "1")
    assert f"resuming from {checkpoint}" in result.stderr
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3]
    plain, info = FAMILIES[name].model_class.from_pretrained(str(out / "checkpoint-3"), output_loading_info=True)
    assert type(plain) is FAMILIES[name].model_class
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_test_mmau_scores_a_checkpoint_of_every_family(name, family_dirs, tmp_path):
    run = tmp_path / "run"
    trainer = make_trainer(family_dirs(name), clip_rows(tmp_path, (1.0, 1.0)), run, max_steps=5,
                           save_strategy="steps", save_steps=5)  # fmt: skip
    trainer.train()  # a training checkpoint, as a run leaves it
    mmau = prepare_six(tmp_path)
    env = {**os.environ, "PYTHON": sys.executable, "CONFIG": str(ROOT / "configs" / "tiny_mmau_eval.yaml"),
           "RUN_DIR": str(run), "MMAU_DIR": str(mmau.parent)}  # fmt: skip
    result = subprocess.run(["bash", str(ROOT / "test_mmau.sh")], env=env, capture_output=True, text=True,
                            timeout=900)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    predictions = json.loads((run / "mmau" / "checkpoint-5" / "predictions.json").read_text())
    assert len(predictions) == 6 and all(isinstance(p["model_output"], str) for p in predictions)
    assert (run / "mmau" / "checkpoint-5" / "metrics.json").is_file()
    rows = (run / "mmau_summary.csv").read_text().splitlines()
    assert [row.split(",")[:2] for row in rows[1:]] == [["checkpoint-5", "5"]]


@pytest.mark.parametrize("name", NAMES)
def test_sft_labels_the_answer_alone_and_a_step_trains_every_trainable_parameter(name, family_dirs, tmp_path):
    model_dir = family_dirs(name)
    processor, rows = load_processor(model_dir), clip_rows(tmp_path, (1.0, 2.0))
    batch = AudioSFTCollator(processor)(rows)
    for index, row in enumerate(rows):
        labelled = processor.tokenizer.decode(batch["labels"][index][batch["labels"][index] != IGNORE])
        assert labelled.startswith(f"<answer>{row['solution']}</answer>"), labelled
    args = SFTConfig(output_dir=str(tmp_path / "sft"), use_cpu=True, bf16=False, gradient_checkpointing=False,
                     max_steps=2, per_device_train_batch_size=2, learning_rate=1e-3, report_to="none",
                     save_strategy="no", remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True},
                     logging_steps=1)  # fmt: skip
    trainer = SFTTrainer(model=load_model(model_dir, "float32"), processing_class=processor, args=args,
                         train_dataset=Dataset.from_list(rows), data_collator=AudioSFTCollator(processor))  # fmt: skip
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    unchanged = [n for n, p in trainer.model.named_parameters() if p.requires_grad and torch.equal(before[n], p)]
    assert before and not unchanged, unchanged[:5]


@pytest.mark.parametrize("name", NAMES)
def test_lora_on_all_linear_layers_trains_the_audio_path_and_stays_off_frozen_modules(name, family_dirs, tmp_path):
    model_dir = family_dirs(name)
    arguments = AudioModelConfig(model_name_or_path=model_dir, use_peft=True, lora_r=4, lora_alpha=8,
                                 lora_target_modules=["all-linear"])  # fmt: skip
    config = lora_config(arguments, load_model(model_dir, "float32"))
    trainer = make_trainer(model_dir, clip_rows(tmp_path, (1.0, 1.0)), tmp_path / "out", config, max_steps=2)
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
    trainer.train()
    unchanged = [n for n, p in trainer.model.named_parameters() if p.requires_grad and torch.equal(before[n], p)]
    assert before and not unchanged, unchanged[:5]
    frozen = trainer.family.frozen_modules
    assert not [n for n in before if any(f"{module}." in n for module in frozen)], "an adapter on a frozen module"
    assert {part for n in before for part in ("audio_tower", "language_model") if part in n} == {
        "audio_tower",
        "language_model",
    }


def test_training_clips_are_checked_against_the_models_family(tmp_path):
    """A clip too short for one family is refused by its training run and accepted by one that takes it."""
    strict = max(FAMILIES.values(), key=lambda family: family.min_samples)
    lenient = min(FAMILIES.values(), key=lambda family: family.min_samples)
    assert lenient.min_samples < strict.min_samples
    write_clip(tmp_path / "short.wav", (strict.min_samples - 1) / 16_000)
    data = DataArguments(data_file=str(write_jsonl(tmp_path / "rows.jsonl", [training_row(0, "short.wav")])))
    with pytest.raises(DataError, match="too short"):
        build_dataset(data, strict.min_samples)
    assert len(build_dataset(data, lenient.min_samples)) == 1


@pytest.mark.parametrize(
    "name",
    [n for n in NAMES if hasattr(FAMILIES[n].model_class.config_class().get_text_config(), "output_router_logits")],
)
def test_a_moe_checkpoint_saved_by_sft_generates(name, family_dirs, tmp_path):
    """TRL's SFT saves `output_router_logits: true` in a mixture of experts' config; evaluation and GRPO generate
    from such a checkpoint."""
    folder = tmp_path / "sft-checkpoint"
    shutil.copytree(family_dirs(name), folder)
    config = json.loads((folder / "config.json").read_text())
    text = config.get("thinker_config", config).get("text_config", config)
    text["output_router_logits"] = True
    (folder / "config.json").write_text(json.dumps(config))
    model = load_model(str(folder), "float32")
    processor = load_processor(str(folder), padding_side="left")
    rows = clip_rows(tmp_path, (1.0, 2.0))
    outputs = generate(
        model, processor, [row["prompt"] for row in rows], None, {"max_new_tokens": 4, "do_sample": False}
    )
    assert len(outputs) == 2
