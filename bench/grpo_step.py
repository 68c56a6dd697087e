"""Where a GRPO step's time goes, for the paper's recipe run the original way and this project's way, in one run.

    .venv/bin/python bench/grpo_step.py --model tiny            # ~1 min on 2 CPU cores
    .venv/bin/python bench/grpo_step.py --model mid             # the real encoder width; ~10 min on 2 CPU cores

Both runs use the paper's recipe (1 prompt x 8 completions per device, gradient accumulation 2, beta 0.04, a fixed
number of new tokens so that both generate the same amount) on the same model and clips. "original" feeds the audio
as the original code did: 30-s padded features through the stock encoder, once per completion, features extracted
once per completion. "this project" uses the defaults: the fast audio encoder (trimmed, once per distinct clip)
and one feature extraction per distinct prompt. Each runs in its own process, so peak memory is its own.
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common

STAGES = ["audio + features", "generation", "log-probs, no grad (ref/old)", "log-probs + loss (forward)",
          "backward", "optimizer", "other"]  # fmt: skip


def child(args) -> None:
    import torch
    from transformers import TrainerCallback
    from trl import GRPOConfig

    from r1_aqa import processing
    from r1_aqa import trainer as trainer_module
    from r1_aqa.families import family_of_processor
    from r1_aqa.runs import DataArguments, build_dataset
    from r1_aqa.trainer import AudioGRPOTrainer

    original = args.mode == "original"
    if original:  # one feature extraction per completion, as the original code and stock TRL do

        def one_per_completion(processor, prompts, **kwargs):
            clips = processing.load_clips(prompts, family_of_processor(processor).max_seconds)
            return processing.encode_rows(processor, prompts, clips, **kwargs)

        trainer_module.encode_rows = one_per_completion
    timings = dict.fromkeys(STAGES, 0.0)
    counting = {"on": False}

    def timed(function, stage_of):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                if counting["on"]:
                    timings[stage_of()] += time.perf_counter() - start

        return wrapper

    class StepClock(TrainerCallback):
        def __init__(self):
            self.last, self.steps, self.total, self.optimizer_start = None, 0, 0.0, None

        def on_train_begin(self, *a, **k):
            self.last = time.perf_counter()

        def on_pre_optimizer_step(self, *a, **k):
            self.optimizer_start = time.perf_counter()

        def on_optimizer_step(self, *a, **k):
            if counting["on"]:
                timings["optimizer"] += time.perf_counter() - self.optimizer_start

        def on_step_end(self, args_, state, *a, **k):
            now = time.perf_counter()
            if counting["on"]:
                self.steps += 1
                self.total += now - self.last
            counting["on"] = state.global_step >= args.warmup_steps  # the first steps warm caches up
            self.last = now

    cuda = torch.cuda.is_available()  # on a GPU: bf16, and checkpointing for the 7B model's activations
    config = GRPOConfig(
        output_dir=str(Path(args.work) / f"out-{args.mode}"), use_cpu=not cuda, bf16=cuda,
        gradient_checkpointing=cuda, per_device_train_batch_size=8, num_generations=8,
        gradient_accumulation_steps=2, beta=0.04, loss_type="grpo", max_completion_length=args.new_tokens,
        generation_kwargs={"min_new_tokens": args.new_tokens}, temperature=1.0, top_k=50, learning_rate=1e-6,
        max_steps=args.warmup_steps + args.steps, save_strategy="no", report_to="none", logging_steps=1, seed=0,
    )  # fmt: skip
    model, processor, _ = common.load(args.model, Path(args.work), fast_audio_encoder=not original, family=args.family)
    clock = StepClock()
    peft_config = None
    if args.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    trainer = AudioGRPOTrainer(
        model=model, processing_class=processor,
        reward_funcs=[lambda completions, **kw: [float(len(str(c))) for c in completions]],
        args=config, train_dataset=build_dataset(DataArguments(data_file=args.data_file)), callbacks=[clock],
        peft_config=peft_config,
    )  # fmt: skip
    trainer._tokenize_prompts = timed(trainer._tokenize_prompts, lambda: "audio + features")
    trainer._generate_single_turn = timed(trainer._generate_single_turn, lambda: "generation")
    trainer._get_per_token_logps_and_entropies = timed(
        trainer._get_per_token_logps_and_entropies,
        lambda: "log-probs + loss (forward)" if torch.is_grad_enabled() else "log-probs, no grad (ref/old)",
    )
    trainer.accelerator.backward = timed(trainer.accelerator.backward, lambda: "backward")
    trainer.train()
    timings["other"] = clock.total - sum(v for k, v in timings.items() if k != "other")
    completions = 16 * clock.steps  # 2 micro-steps x 8 completions per optimizer step
    common.emit({
        "mode": args.mode, "steps": clock.steps, "seconds_per_step": clock.total / clock.steps,
        "stages": {k: v / clock.steps for k, v in timings.items()},
        "completions_per_second": completions / clock.total,
        "new_tokens_per_second": completions * args.new_tokens / clock.total,  # min = max new tokens
        "peak_memory_mb": common.peak_memory_mb(), "device": common.device_name(),
    })  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(common.MODELS), default="tiny")
    parser.add_argument("--family", help="model family (default: the paper's model's; others: --model tiny)")
    parser.add_argument("--steps", type=int, default=3, help="measured optimizer steps")
    parser.add_argument("--warmup-steps", type=int, default=1)
    parser.add_argument("--clip-seconds", type=float, default=10.0)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--lora", action="store_true", help="train a LoRA adapter (how a 7B step fits one GPU)")
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--data-file", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        return child(args)

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        if args.model != "7b":
            common.build_model(args.model, work / args.model, args.family)  # once, for both runs
        prompts = 2 * (args.warmup_steps + args.steps)  # 2 prompts per optimizer step
        clips = common.write_clips(work / "clips", [args.clip_seconds] * prompts)
        from conftest import training_row, write_jsonl

        data_file = write_jsonl(work / "data.jsonl", [training_row(i, str(p)) for i, p in enumerate(clips)])
        results = {}
        for mode in ("original", "this project"):
            command = [sys.executable, __file__, "--mode", mode, "--model", args.model, "--data-file",
                       str(data_file), "--work", str(work), "--steps", str(args.steps), "--warmup-steps",
                       str(args.warmup_steps), "--new-tokens", str(args.new_tokens)]  # fmt: skip
            command += ["--lora"] if args.lora else []
            command += ["--family", args.family] if args.family else []
            run = subprocess.run(command, capture_output=True, text=True)
            if run.returncode:
                sys.exit(f"{mode} run failed:\n{run.stderr[-3000:]}")
            results[mode] = common.parse(run.stdout)

    original, ours = results["original"], results["this project"]
    kind = "GRPO step (LoRA)" if args.lora else "GRPO step"
    title = (f"{kind}, {args.family or 'default family'} model '{args.model}', {args.clip_seconds:g}-s clips, "
             f"16 completions x {args.new_tokens} new tokens per step, {args.steps} measured steps, "
             f"{ours['device']}")  # fmt: skip
    rows = [[stage, f"{original['stages'][stage]:.2f}", f"{ours['stages'][stage]:.2f}",
             f"{original['stages'][stage] / max(ours['stages'][stage], 1e-9):.2f}x"] for stage in STAGES]  # fmt: skip
    rows.append(["whole step", f"{original['seconds_per_step']:.2f}", f"{ours['seconds_per_step']:.2f}",
                 f"{original['seconds_per_step'] / ours['seconds_per_step']:.2f}x"])  # fmt: skip
    rows.append(["completions / s", f"{original['completions_per_second']:.2f}",
                 f"{ours['completions_per_second']:.2f}",
                 f"{ours['completions_per_second'] / original['completions_per_second']:.2f}x"])  # fmt: skip
    rows.append(["new tokens / s", f"{original['new_tokens_per_second']:.0f}", f"{ours['new_tokens_per_second']:.0f}",
                 ""])  # fmt: skip
    rows.append(["peak memory (MB)", f"{original['peak_memory_mb']:.0f}", f"{ours['peak_memory_mb']:.0f}", ""])
    common.print_table(title, ["seconds per step", "original", "this project", "ratio"], rows)


if __name__ == "__main__":
    main()
