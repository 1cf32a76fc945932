"""Build tinynorm/data/digits.npz from scikit-learn's copy of the UCI digits.

Run once from the repository root:

    python scripts/make_digits.py

Only this script needs scikit-learn; tinynorm itself does not. The output holds
``images`` (uint8, shape (1797, 8, 8), values 0..16) and ``labels`` (uint8,
0..9) in file order, compressed, with no pickled objects. The train/test split
is applied at load time by ``tinynorm.data.load_digits``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DEFAULT_OUT = Path(__file__).resolve().parent.parent / "tinynorm" / "data" / "digits.npz"


def build(out: Path) -> Path:
    from sklearn.datasets import load_digits  # only dependency on scikit-learn

    bunch = load_digits()
    raw_images = np.asarray(bunch.images)
    raw_labels = np.asarray(bunch.target)
    if raw_images.shape != (1797, 8, 8) or raw_labels.shape != (1797,):
        raise SystemExit(f"unexpected shapes {raw_images.shape}, {raw_labels.shape}")
    if raw_images.min() < 0 or raw_images.max() > 16 or np.any(raw_images != np.round(raw_images)):
        raise SystemExit("pixel values are not integers in 0..16")
    if raw_labels.min() < 0 or raw_labels.max() > 9:
        raise SystemExit("labels are not in 0..9")

    images = raw_images.astype(np.uint8)
    labels = raw_labels.astype(np.uint8)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, images=images, labels=labels)

    # Verify the file loads without pickle and round-trips exactly.
    with np.load(out, allow_pickle=False) as f:
        assert np.array_equal(f["images"], images) and f["images"].dtype == np.uint8
        assert np.array_equal(f["labels"], labels) and f["labels"].dtype == np.uint8
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output .npz path")
    args = parser.parse_args()
    out = build(args.out)
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
