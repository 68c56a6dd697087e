"""Build a tiny random model of any family (model + processor) from configs, with no download.

    python -m r1_aqa.tiny OUTPUT_DIR [--family NAME] [--seed 0] [--hidden-size 64] [--chunk-length SECONDS]

Same classes, special tokens, chat template and folder layout as the family's published checkpoint; only the sizes
differ, and the tokenizer is a byte-level BPE of a few hundred tokens trained here on the prompt texts. The
default family is the paper's model; `--family` takes any name in `r1_aqa.families.FAMILIES`.
"""

import argparse

from r1_aqa.families import DEFAULT_FAMILY, FAMILIES


def build(output_dir: str, family: str = DEFAULT_FAMILY, **sizes) -> str:
    """A tiny random model of `family` in `output_dir` (sizes: seed, hidden_size, chunk_length, and the family's
    own); returns `output_dir`."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[family].build_tiny(output_dir, **sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output_dir")
    parser.add_argument("--family", default=DEFAULT_FAMILY, choices=sorted(FAMILIES))
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--chunk-length", type=int, help="seconds of audio the encoder takes (default: the family's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = {"seed": args.seed, "hidden_size": args.hidden_size, "chunk_length": args.chunk_length}
    print(build(args.output_dir, args.family, **sizes))


if __name__ == "__main__":
    main()
