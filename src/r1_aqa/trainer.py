"""`AudioGRPOTrainer`: TRL's GRPOTrainer with the audio clip of each prompt fed to every forward pass.

TRL 1.16 handles image tensors only. For audio it needs four narrow changes, each a hook below:
the processor must receive the clips (`_tokenize_prompts`), the clips' features must travel with the batch
(`_generate_and_score_completions`, `compute_loss`), and every log-prob pass (policy, old policy, reference) must
receive them row by row (`_get_per_token_logps_and_entropies`). Which tensors carry the audio, how many of their rows
each sequence owns and which placeholder tokens are never sampled come from the model's family (`r1_aqa.families`);
the KL reference is built with the family's class. Everything else is upstream's, except the options under which
upstream would generate without the clips (vLLM, tool calling), refused at start, and resuming, made exact by
`r1_aqa.grpo_resume.ExactResume`. The same generation hook also shows each prompt's choices in the epoch's
order when asked (`r1_aqa.choice_order.ChoiceShuffle`) and logs the pass rate and the answers' choice positions.
"""

import inspect
import itertools
from contextlib import contextmanager

import torch
from trl import GRPOTrainer
from trl.trainer import grpo_trainer

from r1_aqa.checkpoints import CheckpointLoading
from r1_aqa.choice_order import ChoiceShuffle, answer_position, choice_metrics, position
from r1_aqa.families import family_of
from r1_aqa.grpo_resume import RESUME_HOOKS, ExactResume
from r1_aqa.models import enable_savings, savings_enabled
from r1_aqa.processing import encode_rows, join_rows, split_rows

# The upstream methods this subclass overrides; tests/test_trainer.py fails loudly if one disappears.
OVERRIDDEN_HOOKS = (
    "_tokenize_prompts",
    "_generate_and_score_completions",
    "compute_loss",
    "_get_per_token_logps_and_entropies",
    *RESUME_HOOKS,
)
# An upstream function replaced while upstream's __init__ runs (`_reference_as`); the test checks it is still there.
PATCHED_FUNCTIONS = ("create_model_from_path",)


class AudioGRPOTrainer(CheckpointLoading, ExactResume, GRPOTrainer):
    """GRPO on prompts of the form [user: (audio clip, question text)], as built by `r1_aqa.prompts.messages`."""

    def __init__(self, model, *args, choice_shuffle: ChoiceShuffle | None = None, **kwargs):
        if isinstance(model, str):
            raise TypeError("AudioGRPOTrainer needs a loaded model (see r1_aqa.models.load_model), not a path")
        arguments = inspect.signature(GRPOTrainer.__init__).bind(self, model, *args, **kwargs).arguments
        _refuse_audio_blind_paths(arguments)
        if arguments.get("processing_class") is None:
            raise TypeError("AudioGRPOTrainer needs the model's processor (see r1_aqa.models.load_processor)")
        self.family = family_of(model)
        placeholders = self.family.placeholder_ids(arguments["processing_class"].tokenizer)
        # Upstream reads `config.image_token_id` to keep an image token from being sampled; an audio model's config
        # may have none. Lent a placeholder for the call; every placeholder is suppressed below.
        borrowed = not hasattr(model.config, "image_token_id")
        if borrowed:
            model.config.image_token_id = placeholders[0]
        try:
            with _reference_as(self.family.model_class):
                super().__init__(model, *args, **kwargs)
        finally:
            if borrowed:
                del model.config.image_token_id  # keep it out of the checkpoints' config.json
        # A sampled placeholder would ask the log-prob pass for media the prompt does not have: never sample one.
        suppressed = sorted({*(self.generation_kwargs.get("suppress_tokens") or []), *placeholders})
        self.generation_kwargs["suppress_tokens"] = suppressed
        self.generation_config.suppress_tokens = suppressed
        self._batch_audio: dict[str, torch.Tensor] | None = None
        self._batch_rows: list[int] | None = None
        self.choice_shuffle = choice_shuffle
        # Positions logged: as many as the most choices a training question has (none without a `choices` column).
        columns = getattr(self.train_dataset, "column_names", None) or []
        self._choice_positions = max(map(len, self.train_dataset["choices"])) if "choices" in columns else 0
        # Upstream builds the reference model afresh from the checkpoint: give it the policy's audio encoder path.
        if self.ref_model is not None and savings_enabled(self.model, self.family):
            enable_savings(self.ref_model, self.family)  # under DeepSpeed, an engine around the model

    def _tokenize_prompts(self, prompts: list):
        # Upstream collects images only: load each clip and let the processor expand its placeholder. (Upstream's
        # `tools` and the chat template it swaps in for them are refused at start, so the template kwargs are all.)
        encoded, self._batch_rows = encode_rows(
            self.processing_class, prompts, chat_template_kwargs=self.chat_template_kwargs
        )
        pairs = zip(encoded["input_ids"], encoded["attention_mask"], strict=True)
        prompt_ids = [ids[mask.bool()].tolist() for ids, mask in pairs]
        self._batch_audio = {key: encoded[key] for key in self.family.audio_keys}
        return prompt_ids, None, dict(self._batch_audio)  # tensors in the third slot go to `generate`

    def _generate_and_score_completions(self, inputs):
        # Upstream neither passes audio to the old-policy and reference passes nor keeps it in the batch it returns;
        # it shows a prompt as the dataset holds it, where shuffled choices are drawn per epoch; and it logs no pass
        # rate or answer positions. The epoch is the trainer state's, which a resumed run restores.
        if self.choice_shuffle is not None and self.model.training:
            epoch = int(self.state.epoch or 0)
            inputs = [self.choice_shuffle.row(row, epoch) for row in inputs]
        output = super()._generate_and_score_completions(inputs)
        device = self.accelerator.device
        # One tensor per sequence (its own audio rows): upstream shuffles and splits lists along with the batch.
        per_sequence = split_rows(self._batch_audio, self._batch_rows)
        output.update({key: [part.to(device) for part in parts] for key, parts in per_sequence.items()})
        self._batch_audio = self._batch_rows = None
        if self._choice_positions:
            self._log_choice_metrics(inputs, output["completion_ids"])
        return output

    def _log_choice_metrics(self, inputs: list[dict], completion_ids: torch.Tensor) -> None:
        """`choice_order.choice_metrics` over the whole generation batch (every process), into upstream's log."""
        texts = self.processing_class.batch_decode(completion_ids, skip_special_tokens=True)
        positions = [
            (answer_position(text, row["choices"]), position(row["solution"], row["choices"]))
            for text, row in zip(texts, inputs, strict=True)
        ]
        gathered = self.accelerator.gather(torch.tensor(positions, device=self.accelerator.device)).cpu()
        mode = "train" if self.model.training else "eval"
        group_size = self.num_generations if mode == "train" else self.num_generations_eval
        metrics = choice_metrics(gathered[:, 0], gathered[:, 1], group_size, self._choice_positions)
        for name, value in metrics.items():
            self._metrics[mode][name].append(value)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # Upstream's loss pass forwards image keys only; the batch's clips are read from `inputs` here.
        self._batch_audio, self._batch_rows = join_rows({key: inputs[key] for key in self.family.audio_keys})
        try:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            self._batch_audio = self._batch_rows = None

    def _get_per_token_logps_and_entropies(self, model, input_ids, *args, **kwargs):
        # Upstream's signature has image arguments only; each forward it makes gets the clips of its own rows.
        if self._batch_audio is None:
            raise RuntimeError("a log-prob pass ran without the batch's audio; upstream's call order has changed")
        with _feed_rows(model, self._batch_audio, self._batch_rows, input_ids.size(0)):
            return super()._get_per_token_logps_and_entropies(model, input_ids, *args, **kwargs)


def _refuse_audio_blind_paths(arguments: dict) -> None:
    """Refuse, before upstream builds anything, the options under which TRL 1.16 would generate without the clips."""
    args = arguments.get("args")
    if args is not None and args.use_vllm:
        raise ValueError(
            "use_vllm: TRL 1.16 sends vLLM the prompts' images only, so every rollout would be generated without "
            "its audio clip; generate with transformers (use_vllm: false)"
        )
    for name in ("tools", "environment_factory"):
        if arguments.get(name):
            raise ValueError(
                f"{name}: TRL 1.16's tool-calling loop re-tokenizes each prompt with the tool replies but without "
                "its audio clip, so the turns after a tool call would not hear the audio; not supported here"
            )


@contextmanager
def _reference_as(model_class: type):
    """Upstream builds the KL reference with the class the folder's `architectures` names: for a published
    whole-model folder a class transformers lacks, or one that also builds the speech talker. The policy's own class
    (`Family.model_class`) builds it here."""
    build = grpo_trainer.create_model_from_path

    def create(model_id, architecture=None, **kwargs):
        return build(model_id, architecture=model_class, **kwargs)

    grpo_trainer.create_model_from_path = create
    try:
        yield
    finally:
        grpo_trainer.create_model_from_path = build


@contextmanager
def _feed_rows(model: torch.nn.Module, audio: dict[str, torch.Tensor], rows: list[int], num_rows: int):
    """Add each forward's slice of `audio` to its kwargs, in order, as upstream walks the sequences in chunks:
    sequence i owns `rows[i]` audio rows (one per clip, or one per window of a clip)."""
    if len(rows) != num_rows:
        raise ValueError(f"audio rows given for {len(rows)} sequences, {num_rows} sequences: audio and text misaligned")
    for key, value in audio.items():
        if value.size(0) != sum(rows):
            raise ValueError(
                f"{key} has {value.size(0)} rows, the sequences own {sum(rows)}: audio and text misaligned"
            )
    starts = [0, *itertools.accumulate(rows)]
    cursor = 0

    def add_audio(module, args, kwargs):
        nonlocal cursor
        sequences = kwargs["input_ids"].size(0)
        for key, value in audio.items():
            kwargs[key] = value[starts[cursor] : starts[cursor + sequences]]
        cursor += sequences
        return args, kwargs

    handle = model.register_forward_pre_hook(add_audio, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()
    if cursor != num_rows:
        raise RuntimeError(f"log-prob passes covered {cursor} of {num_rows} rows; audio would misalign")
