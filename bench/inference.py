"""MMAU-style inference throughput (clips per second) against batch size, stock audio encoder vs the fast one.

    .venv/bin/python bench/inference.py --model tiny                     # ~1 min on 2 CPU cores
    .venv/bin/python bench/inference.py --model mid --batch-sizes 1 4 8  # the real encoder width; a few minutes

Greedy decoding of a fixed number of new tokens (so both paths generate the same amount), the project's prompt,
clips read from disk and featurized inside the timed loop and batched in order of length, as `r1_aqa.evaluate`
does (`--unsorted` batches them in file order). The two paths run in the
same process on the same weights, alternating, so the ratio is measured under the same conditions.
"""

import argparse
import tempfile
import time
from pathlib import Path

import common

from r1_aqa.evaluate import generate
from r1_aqa.families import family_of
from r1_aqa.prompts import messages


def throughput(model, processor, conversations, batch_size: int, new_tokens: int) -> float:
    decoding = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False}
    start = time.perf_counter()
    for first in range(0, len(conversations), batch_size):  # evaluation's own call: clips loaded and encoded inside
        generate(model, processor, conversations[first : first + batch_size], None, decoding)
    return len(conversations) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(common.MODELS), default="tiny")
    parser.add_argument("--family", help="model family (default: the paper's model's; others: --model tiny)")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--clip-seconds", type=float, nargs="+", default=[10.0], help="lengths, cycled over clips")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--unsorted", action="store_true", help="batch clips in file order, not by length")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        lengths = [args.clip_seconds[i % len(args.clip_seconds)] for i in range(args.clips)]
        if not args.unsorted:
            lengths.sort()
        clips = common.write_clips(work / "clips", lengths)
        conversations = [messages(str(p), "What is the sound?", ["dog", "car", "rain", "bell"]) for p in clips]
        model, processor, _ = common.load(args.model, work, fast_audio_encoder=False, family=args.family)
        model.eval()
        processor.tokenizer.padding_side = "left"  # the text only (see r1_aqa.models.load_processor)
        throughput(model, processor, conversations[:2], 2, 2)  # warm-up
        rows = []
        for batch_size in args.batch_sizes:
            common.set_savings(model, False)
            stock = throughput(model, processor, conversations, batch_size, args.new_tokens)
            common.set_savings(model, True)
            fast = throughput(model, processor, conversations, batch_size, args.new_tokens)
            rows.append([batch_size, f"{stock:.2f}", f"{fast:.2f}", f"{fast / stock:.2f}x"])
    order = "file order" if args.unsorted else "batched by length"
    seconds = "/".join(f"{s:g}" for s in args.clip_seconds)
    family = family_of(model).name
    title = (f"Inference, {family} model '{args.model}', {order}, {args.clips} clips of {seconds} s, "
             f"{args.new_tokens} new tokens each, greedy, {common.device_name()}")  # fmt: skip
    common.print_table(title, ["batch size", "clips/s stock", "clips/s fast", "ratio"], rows)


if __name__ == "__main__":
    main()
