"""Build a benchmark's database once and keep it under benchmarks/.cache/ (or where --db says)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path


def cached(db: Path, figure: str, build: Callable[[Path], None], **sizes: int) -> Path:
    """Return `db`, built first by `build` (printing how long it took) when it is missing."""
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        build(db)
        print(json.dumps({"figure": figure, **sizes,
                          "seconds": round(time.perf_counter() - t, 1)}), flush=True)
    return db
