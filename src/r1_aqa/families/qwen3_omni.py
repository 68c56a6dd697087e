"""Qwen3-Omni-30B-A3B (Qwen/Qwen3-Omni-30B-A3B-Instruct and -Thinking), its thinker trained alone: the family, and a
tiny random one laid out like the published folder.

    python -m r1_aqa.tiny OUTPUT_DIR --family qwen3_omni [--hidden-size 64]

`Qwen3OmniMoeThinkerForConditionalGeneration` (MoE text model, audio and vision towers) loads from the whole published
folder (model_type qwen3_omni_moe), leaving its `talker.*` and `code2wav.*` tensors unread; its own checkpoints say
qwen3_omni_moe_thinker. Training never builds the whole-model class (5.23 leaves its talker's MoE experts
`torch.empty`); `build_tiny` does, to write the published layout, and seeds those experts.

Audio renders as `<|audio_start|><|audio_pad|><|audio_end|>`, `<|audio_pad|>` expanded to 13 tokens per 100 mel frames
(1 s, n_window 50) plus three stride-2 convolutions of the rest. `input_features` (B, 128, frames) and
`feature_attention_mask` (B, frames), one row per sequence, right padded to the batch's longest clip plus half an STFT
window (200 samples) of zeros: nothing is cut at 30 s, and a clip gets ceil(samples / 160) valid frames, computed over
zeros past its end, alone or in any batch. (The stock class pads to the longest clip only, whose last frame it then
computes over a reflection, with samples // 160 frames: the same clip got other features, and one audio token fewer,
alone than beside a longer clip.) The encoder gathers the valid frames before its first layer, so padding costs it
nothing: no saving is declared. Generation must never sample `<|audio_pad|>`, `<|image_pad|>` or `<|video_pad|>`.

Unlike Qwen2-Audio: no 30-s window; the trained model is part of a bigger folder; the stock processor needs
torchvision (its video sub-processor), so `Qwen3OmniAudioProcessor` drops the image and video sub-processors (same
text and audio outputs but for the tail above) and saves the published layout naming the stock class, which plain
transformers with torchvision then loads. The stock class pads text on the left unless tokenizer_config.json names a
side; here `tokenizer.padding_side` decides.

Chat template: Qwen3-Omni-30B-A3B-Instruct's chat_template.json, verbatim as copied into xorbitsai/inference's
llm_family.json ("Qwen3-Omni-Instruct", commit a53c19365); -Thinking's differs only in its tools-and-system header, and
neither adds a system turn. The tiny folder has the published files (config.json, safetensors shards and index,
generation_config.json, preprocessor_config.json with image and audio keys and no chunk_length, chat_template.json,
tokenizer_config.json, vocab.json, merges.txt) plus tokenizer.json (the tiny byte-level BPE): the special tokens' names
are real, their ids are not.
"""

# ruff: noqa: E501  (the chat template is kept verbatim, long lines included)

import torch
from transformers import (
    GenerationConfig,
    Qwen2Tokenizer,
    Qwen3OmniMoeConfig,
    Qwen3OmniMoeForConditionalGeneration,
    Qwen3OmniMoeProcessor,
    Qwen3OmniMoeThinkerConfig,
    Qwen3OmniMoeThinkerForConditionalGeneration,
    WhisperFeatureExtractor,
)

from r1_aqa.families import Family, register
from r1_aqa.families._omni_processor import AudioOnlyOmniProcessor
from r1_aqa.families._tiny_text import build_tokenizer as build_text_tokenizer

PLACEHOLDER_TOKENS = ("<|audio_pad|>", "<|image_pad|>", "<|video_pad|>")
# The published vocabulary's special tokens that prompts and configs name (the tiny vocabulary has no others).
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|vision_pad|>",
    "<|image_pad|>", "<|video_pad|>", "<|audio_start|>", "<|audio_end|>", "<tts_pad>", "<tts_text_bos>",
    "<tts_text_eod>", "<tts_text_bos_single>", "<|audio_pad|>",
]  # fmt: skip
NAMED_TOKENS = {
    "image_token": "<|image_pad|>", "audio_token": "<|audio_pad|>", "video_token": "<|video_pad|>",
    "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>",
    "audio_bos_token": "<|audio_start|>", "audio_eos_token": "<|audio_end|>",
}  # fmt: skip
# The published preprocessor_config.json's image-processor keys: the stock class reads its image processor there.
IMAGE_KEYS = {
    "image_processor_type": "Qwen2VLImageProcessor", "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    "patch_size": 16, "temporal_patch_size": 2, "merge_size": 2, "min_pixels": 3136, "max_pixels": 12845056,
}  # fmt: skip
# The published preprocessor_config.json's window (n_samples 4,800,000 = 300 s, nb_max_frames 30,000; inert in 5.23,
# whose extractor recomputes 30 s without a chunk_length key). No layer bounds the length; 300 s is 3,900 audio tokens.
MAX_SECONDS = 300.0
# One sample gives one frame and one audio token; an empty clip leaves the STFT 200 zeros, which torch will not
# reflect-pad by 200 (RuntimeError "Padding size should be less than the corresponding input dimension").
MIN_SAMPLES = 1

CHAT_TEMPLATE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {%- if messages[0].content is string %}
            {{- messages[0].content }}
        {%- else %}
            {%- for content in messages[0].content %}
                {%- if content.type == 'image' or 'image' in content or 'image_url' in content %}
                    {{- "<|vision_start|><|image_pad|><|vision_end|>" }}
                {%- elif content.type == 'audio' or 'audio' in content or 'audio_url' in content %}
                    {{- "<|audio_start|><|audio_pad|><|audio_end|>" }}
                {%- elif content.type == 'video' or 'video' in content %}
                    {{- "<|vision_start|><|video_pad|><|vision_end|>" }}
                {%- elif content.type == 'text' %}
                    {{- content.text }}
                {%- endif %}
            {%- endfor %}
        {%- endif %}
    {%- endif %}
    {{- '\n\n' }}
    {{- "# Tools\n\nYou may call one or more functions to assist with the user query.\n\nYou are provided with function signatures within <tools></tools> XML tags:\n<tools>" }}
    {%- for tool in tools %}
        {{- "\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" }}
{%- else %}
    {%- if messages[0].role == 'system' %}
        {%- if messages[0].content is string %}
            {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
        {%- else %}
            {%- for content in messages[0].content %}
                {%- if content.type == 'image' or 'image' in content or 'image_url' in content %}
                    {{- '<|im_start|>system\n' +"<|vision_start|><|image_pad|><|vision_end|>"+ '<|im_end|>\n' }}
                {%- elif content.type == 'audio' or 'audio' in content or 'audio_url' in content %}
                    {{- '<|im_start|>system\n' +"<|audio_start|><|audio_pad|><|audio_end|>"+ '<|im_end|>\n' }}
                {%- elif content.type == 'video' or 'video' in content %}
                    {{- '<|im_start|>system\n' +"<|vision_start|><|video_pad|><|vision_end|>"+ '<|im_end|>\n' }}
                {%- elif content.type == 'text' %}
                    {{- '<|im_start|>system\n' +content.text+ '<|im_end|>\n' }}
                {%- endif %}
            {%- endfor %}
        {%- endif %}
    {%- endif %}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = namespace(text="") %}
        {%- for mcontent in message.content %}
            {%- if mcontent.type == 'image' or 'image' in mcontent or 'image_url' in mcontent %}
                {%- set content.text = content.text~"<|vision_start|><|image_pad|><|vision_end|>" %}
            {%- elif mcontent.type == 'audio' or 'audio' in mcontent or 'audio_url' in mcontent %}
                {%- set content.text = content.text~"<|audio_start|><|audio_pad|><|audio_end|>" %}
            {%- elif mcontent.type == 'video' or 'video' in mcontent %}
                {%- set content.text = content.text~"<|vision_start|><|video_pad|><|vision_end|>" %}
            {%- elif mcontent.type == 'text' %}
                {%- set content.text = content.text~mcontent.text %}
            {%- endif %}
        {%- endfor %}
        {%- set content = content.text %}
    {%- endif %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = "" %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- else %}
            {%- if '</think>' in content %}
            {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- set content = content.split('</think>')[-1].lstrip('\n') %}
        {%- endif %}
    {%- endif %}
    {%- if loop.index0 > ns.last_query_index %}
        {%- if loop.last or (not loop.last and reasoning_content) %}
            {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip("\n") + '\n</think>\n\n' + content.lstrip('\n') }}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
    {%- else %}
        {{- '<|im_start|>' + message.role + '\n' + content }}
    {%- endif %}
    {%- if message.tool_calls %}
        {%- for tool_call in message.tool_calls %}
            {%- if (loop.first and content) or (not loop.first) %}{{- '\n' }}{%- endif %}
            {%- if tool_call.function %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '<tool_call>\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {%- if tool_call.arguments is string %}
                {{- tool_call.arguments }}
            {%- else %}
                {{- tool_call.arguments | tojson }}
            {%- endif %}
            {{- '}\n</tool_call>' }}
        {%- endfor %}
    {%- endif %}
    {{- '<|im_end|>\n' }}
    {%- elif message.role == "tool" %}
        {%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}{{- '<|im_start|>user' }}{%- endif %}
        {{- '\n<tool_response>\n' }}
        {{- content }}
        {{- '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}{{- '<|im_end|>\n' }}{%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}
{%- endif %}"""


class Qwen3OmniAudioProcessor(AudioOnlyOmniProcessor, Qwen3OmniMoeProcessor):
    """The stock processor without its image and video sub-processors (`_omni_processor`): the same text outputs,
    the same audio ones but for the clip ends (`_process_audio`)."""

    stock_name = Qwen3OmniMoeProcessor.__name__
    image_keys = IMAGE_KEYS
    dropped_keys = ("chunk_length",)  # the published file has none

    def _process_audio(self, audio, **kwargs):
        # Every clip followed by half an STFT window of zeros, as the stock class pads all but the batch's longest
        # (whose last frames it reflects instead): a clip's frames then do not depend on the clips beside it.
        if kwargs.get("padding") in (True, "longest"):
            longest = max(len(clip) for clip in audio) + self.feature_extractor.n_fft // 2
            kwargs = {**kwargs, "padding": "max_length", "max_length": longest}
        return super()._process_audio(audio, **kwargs)


def build_tokenizer(vocab_size: int = 400) -> Qwen2Tokenizer:
    bpe = build_text_tokenizer(SPECIAL_TOKENS, "<|im_end|>", "<|endoftext|>", NAMED_TOKENS, vocab_size)
    # The published tokenizer's class over the tiny BPE (tokenizer.json keeps its pre-tokenizer).
    return Qwen2Tokenizer(
        tokenizer_object=bpe.backend_tokenizer,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        extra_special_tokens=NAMED_TOKENS,
    )


def build_processor() -> Qwen3OmniAudioProcessor:
    feature_extractor = WhisperFeatureExtractor(
        feature_size=128, sampling_rate=16_000, hop_length=160, n_fft=400, dither=0.0, return_attention_mask=True
    )
    return Qwen3OmniAudioProcessor(feature_extractor, build_tokenizer(), chat_template=CHAT_TEMPLATE)


def build_config(tokenizer, hidden_size: int = 64) -> Qwen3OmniMoeConfig:
    """Real layer types at tiny sizes: a 2-layer MoE thinker (4 experts, 2 per token), a 2-layer audio encoder with
    the real windows (n_window 50, n_window_infer 800), a 1-block vision tower; talker and code2wav as small."""
    ids = tokenizer.convert_tokens_to_ids
    media = dict(
        audio_token_id=ids("<|audio_pad|>"),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        audio_start_token_id=ids("<|audio_start|>"),
        vision_start_token_id=ids("<|vision_start|>"),  # get_rope_index reads it even for audio-only prompts
    )
    # mrope_section sums to head_dim / 2; audio-only prompts give its three parts the same positions.
    rope = {"rope_type": "default", "rope_theta": 1e6, "mrope_section": [4, 2, 2], "interleaved": True}
    layers = dict(num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16)
    moe = dict(moe_intermediate_size=hidden_size // 2, num_experts=4, num_experts_per_tok=2)
    text = dict(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size, **layers, **moe)
    audio = dict(d_model=hidden_size, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=2 * hidden_size)
    vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, deepstack_visual_indexes=[0])
    thinker = dict(
        text_config={**text, "max_position_embeddings": 8192, "rope_parameters": rope},
        audio_config={**audio, "downsample_hidden_size": 32, "output_dim": hidden_size},
        vision_config={**vision, "out_hidden_size": hidden_size, "num_position_embeddings": 64},
        **media,
    )
    small = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2)
    talker_moe = dict(moe_intermediate_size=16, shared_expert_intermediate_size=32, num_experts=2, num_experts_per_tok=1)  # fmt: skip
    talker = dict(
        text_config={**small, **talker_moe, "num_key_value_heads": 1, "head_dim": 16},
        code_predictor_config={**small, "num_key_value_heads": 1, "head_dim": 16},
        num_code_groups=4,
        thinker_hidden_size=hidden_size,
        accept_hidden_layer=1,
        spatial_merge_size=2,
        **media,
    )
    code2wav = dict(
        codebook_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=2, num_quantizers=4, upsample_rates=[2, 2], upsampling_ratios=[2], decoder_dim=32,
        sliding_window=8,
    )  # fmt: skip
    return Qwen3OmniMoeConfig(
        thinker_config=thinker,
        talker_config=talker,
        code2wav_config=code2wav,
        im_start_token_id=ids("<|im_start|>"),
        im_end_token_id=ids("<|im_end|>"),
        tts_pad_token_id=ids("<tts_pad>"),
        tts_bos_token_id=ids("<tts_text_bos>"),
        tts_eos_token_id=ids("<tts_text_eod>"),
    )


def build_tiny(output_dir: str, seed: int = 0, hidden_size: int = 64, chunk_length: int | None = None) -> str:
    """The whole published layout, thinker, talker and code2wav. `chunk_length` is accepted and ignored: no window
    bounds this family's input (the processor pads to the batch's longest clip and never cuts one)."""
    processor = build_processor()
    tokenizer = processor.tokenizer
    config = build_config(tokenizer, hidden_size)
    torch.manual_seed(seed)
    model = Qwen3OmniMoeForConditionalGeneration(config)
    with torch.no_grad():  # 5.23 leaves the talker's expert tensors as torch.empty: give them seeded values
        for name, parameter in model.talker.named_parameters():
            if ".experts." in name:
                parameter.normal_(0.0, config.initializer_range)
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id], pad_token_id=tokenizer.pad_token_id
    )
    model.save_pretrained(output_dir, max_shard_size="1MB")  # sharded with an index, as published
    processor.save_pretrained(output_dir)
    return output_dir


FAMILY = register(
    Family(
        name="qwen3_omni",
        model_types=(Qwen3OmniMoeConfig.model_type, Qwen3OmniMoeThinkerConfig.model_type),
        model_class=Qwen3OmniMoeThinkerForConditionalGeneration,
        processor_class=Qwen3OmniAudioProcessor,
        audio_keys=("input_features", "feature_attention_mask"),
        placeholder_tokens=PLACEHOLDER_TOKENS,
        max_seconds=MAX_SECONDS,
        min_samples=MIN_SAMPLES,
        build_tiny=build_tiny,
        frozen_modules=("model.visual",),
        ignored_prefixes=("talker.", "code2wav."),
    )
)
