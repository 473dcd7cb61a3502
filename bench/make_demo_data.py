"""Regenerate the bundled demo data in tdd_priv/data/demo/ from ../shared/datasets.

    python bench/make_demo_data.py [--datasets DIR]

- hatecheck.csv: every row of hatecheck/hatecheck.csv, columns text,label,group,split only.
- public_pool.csv: 2,000 distinct tweets from the Davidson train split (one `text` column), a
  per-class quota proportional to the class sizes; within a class, the tweets whose UTF-8 SHA-256
  sorts first. Only the standard library is used, so texts are copied byte for byte.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "tdd_priv" / "data" / "demo"
DEFAULT_DATASETS = REPO.parent / "shared" / "datasets"
HATECHECK_COLUMNS = ("text", "label", "group", "split")
PUBLIC_POOL_SIZE = 2000


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def write_csv(path: Path, columns: tuple[str, ...], rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows({column: row[column] for column in columns} for row in rows)


def quotas(class_sizes: dict[str, int], total: int) -> dict[str, int]:
    """Largest-remainder apportionment of `total` over classes, proportional to their sizes."""
    n = sum(class_sizes.values())
    exact = {label: total * size / n for label, size in class_sizes.items()}
    result = {label: int(share) for label, share in exact.items()}
    by_remainder = sorted(exact, key=lambda label: (result[label] - exact[label], label))
    for label in by_remainder[: total - sum(result.values())]:
        result[label] += 1
    return result


def public_pool(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    by_class: dict[str, dict[str, str]] = defaultdict(dict)  # label -> {sha256: text}
    seen: set[str] = set()
    for row in rows:
        text = row["text"]
        if row["split"] != "train" or not text.strip() or text in seen:
            continue
        seen.add(text)
        by_class[row["label"]][hashlib.sha256(text.encode("utf-8")).hexdigest()] = text
    chosen: list[tuple[str, str]] = []
    sizes = {label: len(texts) for label, texts in by_class.items()}
    for label, quota in quotas(sizes, PUBLIC_POOL_SIZE).items():
        digests = sorted(by_class[label])[:quota]
        chosen.extend((digest, by_class[label][digest]) for digest in digests)
    # Interleave the classes in hash order so the file has no class blocks.
    return [{"text": text} for _, text in sorted(chosen)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=DEFAULT_DATASETS)
    args = parser.parse_args()
    hatecheck = read_rows(args.datasets / "hatecheck" / "hatecheck.csv")
    write_csv(DEMO_DIR / "hatecheck.csv", HATECHECK_COLUMNS, hatecheck)
    pool = public_pool(read_rows(args.datasets / "davidson_hate_offensive" / "davidson.csv"))
    write_csv(DEMO_DIR / "public_pool.csv", ("text",), pool)
    print(f"hatecheck.csv: {len(hatecheck)} rows; public_pool.csv: {len(pool)} rows")


if __name__ == "__main__":
    main()
