"""Fitting a drawing: latency of `POST /encode?fit=true` and how close the fitted picture gets.

    .venv/bin/python bench/fit.py              # 50 handwritten digits, about a minute
    .venv/bin/python bench/fit.py --digits 5   # a smoke run

Starts the service on a loopback port with the shipped model (bench/serve.py's server) and sends
real handwriting, the first MNIST test digits as PNG files, one request at a time: first to
`POST /encode` (Q's reading only), then with `fit=true`. Prints p50/p95 latency of both and the
mean pixel error (grey levels, 0..255) of G's picture of Q's codes with seed 0's noise and of the
fitted picture, against the digit. Never fails on time.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from bench.serve import checkpoint_folder, print_header, server  # noqa: E402
from training.data import load_dataset  # noqa: E402


def png_digits(count: int) -> list[bytes]:
    images = load_dataset("mnist", "test").images[:count, 0].numpy()  # (N, 28, 28) in [-1, 1]
    pngs = []
    for pixels in images:
        buffer = io.BytesIO()
        Image.fromarray(((pixels + 1) * 127.5).round().astype(np.uint8)).save(buffer, "PNG")
        pngs.append(buffer.getvalue())
    return pngs


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=50, help="handwritten digits to send")
    args = parser.parse_args(argv)
    print_header()
    digits = png_digits(args.digits)
    with checkpoint_folder() as (folder, what), server(folder, max_batch=64) as url, httpx.Client(timeout=60) as client:
        print(f"model: {what}; {len(digits)} MNIST test digits, one request at a time")
        headers = {"Content-Type": "image/png"}
        client.post(f"{url}/encode?fit=true", content=digits[0], headers=headers)  # warm-up
        timings: dict[str, list[float]] = {"encode": [], "encode?fit=true": []}
        before, after = [], []
        for digit in digits:
            for path, times in timings.items():
                start = time.perf_counter()
                answer = client.post(f"{url}/{path}", content=digit, headers=headers)
                times.append((time.perf_counter() - start) * 1000)
                answer.raise_for_status()
            fit = answer.json()["fit"]
            before.append(fit["pixel_error_before"])
            after.append(fit["pixel_error_after"])
    print("| request | p50 ms | p95 ms |")
    print("| --- | ---: | ---: |")
    for path, times in timings.items():
        print(f"| POST /{path} | {percentile(times, 50):.0f} | {percentile(times, 95):.0f} |")
    print(
        f"pixel error (mean |difference|, grey levels): Q's codes with seed 0's noise {statistics.mean(before):.1f}, "
        f"fitted {statistics.mean(after):.1f} (worst {max(after):.1f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
