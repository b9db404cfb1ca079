"""Evaluate a trained CAD2 Task 2 Conv-TasNet: SDR / SI-SDR per song and their medians.

Example, after ``train.py --exp_dir exp/violin ...``:

    python ConvTasNet/eval.py --exp_dir exp/violin --split valid

Reads ``<exp_dir>/train_config.json`` for the data root, target and causality, loads the exported
model ``<exp_dir>/ConvTasNet_<Instrument>_<Causal|NonCausal>/`` (or ``--model_dir``), separates
each whole song of ``music.<split>.json`` containing the target with the chunked inference of the
enhancement recipe, and writes ``<exp_dir>/<out_dir>/results.csv`` plus example WAV files.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from clarity.separation.checkpoints import checkpoint_name
from clarity.separation.convtasnet import ConvTasNetStereo
from clarity.separation.dataset import RebalanceMusicDataset
from clarity.separation.evaluation import evaluate_model
from clarity.separation.inference import resolve_device
from clarity.utils.json_files import read_json_object


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exp_dir", type=Path, required=True, help="training experiment folder")
    parser.add_argument("--split", default="valid", help="metadata split: music.<split>.json")
    parser.add_argument("--root", type=Path, help="data root (default: from train_config.json)")
    parser.add_argument("--model_dir", type=Path, help="exported model (default: from exp_dir)")
    parser.add_argument("--out_dir", default="eval", help="results folder inside exp_dir")
    parser.add_argument("--n_save_ex", type=int, default=5, help="songs saved as audio, -1: all")
    parser.add_argument("--segment", type=float, default=6.0, help="inference chunk length, s")
    parser.add_argument("--overlap", type=float, default=0.1, help="chunk cross-fade, s")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cpu)")
    return parser


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args = build_parser().parse_args()
    train_config = read_json_object(args.exp_dir / "train_config.json", "training config")
    causality = "causal" if train_config["causal"] else "noncausal"
    model_dir = args.model_dir or args.exp_dir / checkpoint_name(train_config["target"], causality)
    device = resolve_device(args.device)
    model = ConvTasNetStereo.from_pretrained(model_dir, device=device)
    dataset = RebalanceMusicDataset(
        args.root or train_config["root"], args.split, train_config["target"],
        train_config["sample_rate"],
    )  # fmt: skip
    out_dir = args.exp_dir / args.out_dir
    rows = evaluate_model(
        model, dataset, out_dir, args.segment, args.overlap, args.n_save_ex, device
    )
    logging.info("Scored %d songs; results in %s", len(rows), out_dir / "results.csv")
    print((out_dir / "results.csv").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
