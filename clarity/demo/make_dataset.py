"""Command line: build the demo dataset.

python -m clarity.demo.make_dataset --root demo_data/cad2 [--size small|tiny] [--seed 0]
    [--soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from clarity.demo.dataset import make_dataset
from clarity.demo.render import SOUNDFONT
from clarity.demo.songs import SIZES

DEFAULT_ROOT = "demo_data/cad2"


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments and build (or complete) the dataset."""
    parser = argparse.ArgumentParser(
        description="Render the CAD2 Task 2 demo dataset (no download)."
    )
    parser.add_argument("--root", default=DEFAULT_ROOT, help="dataset root (default: %(default)s)")
    parser.add_argument(
        "--size", choices=SIZES, default="small", help="dataset size (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--soundfont", type=Path, default=SOUNDFONT,
        help="General MIDI .sf2 to play the instruments from (default: %(default)s)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    summary = make_dataset(args.root, args.size, args.seed, soundfont=args.soundfont)
    print(
        f"demo dataset in {args.root}: {summary.rendered} songs rendered, {summary.kept} kept, "
        f"{summary.seconds:.1f} s"
    )


if __name__ == "__main__":
    main()
