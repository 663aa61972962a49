"""The command line: ``python -m ssui_lib COMMAND …`` (also installed as ``ssui``).

Every command has --help, exits non-zero with a one-line reason on bad input, and writes its
results atomically. Commands are registered by small ``_add_*`` functions, one per group.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from .errors import SSUIError


def _add_book(sub) -> None:
    book = sub.add_parser("book", help="run the book's chapters or build the HTML book")
    bsub = book.add_subparsers(dest="book_cmd", required=True)
    run = bsub.add_parser("run", help="execute chapters with papermill; writes papermill_runs/<profile>/")
    run.add_argument("--profile", required=True, help="a profile of book.toml (e.g. smoke, paper)")
    run.add_argument("--chapters", help="comma-separated chapter ids, e.g. 00,04 (default: all)")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="override a notebook parameter (TOML literal or plain string); repeatable")
    run.add_argument("--resume", action="store_true",
                     help="skip chapters whose source, parameters and library are unchanged since an ok run")
    run.add_argument("--config", default="book.toml", help="path to book.toml (default: ./book.toml)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=_book_run)
    build = bsub.add_parser("build", help="render executed notebooks as an offline static HTML book")
    build.add_argument("--profile", required=True)
    build.add_argument("--config", default="book.toml")
    build.add_argument("--out", help="output folder (default: _build/html/<profile>)")
    build.set_defaults(func=_book_build)


def _book_run(a) -> int:
    from .book import run_book

    ids = [x.strip() for x in a.chapters.split(",") if x.strip()] if a.chapters else None
    m = run_book(a.profile, config=a.config, chapters=ids, sets=a.set, resume=a.resume, progress=not a.no_progress)
    for cid, c in m["chapters"].items():
        extra = " (unchanged, skipped)" if c.get("resumed") else ""
        print(f"{cid} {c['status']:7s} {c.get('duration_s', 0):8.1f}s  {c['title']}{extra}")
    print(f"book [{m['profile']}]: {m['status']} in {m['duration_s']:.1f}s; manifest papermill_runs/{m['profile']}/manifest.json")
    return 0


def _book_build(a) -> int:
    from pathlib import Path

    from .book import build_book

    index = build_book(a.profile, config=a.config, out_dir=Path(a.out) if a.out else None)
    print(f"HTML book: {index}")
    return 0


def _add_data(sub) -> None:
    data = sub.add_parser("data", help="inspect, validate and export datasets")
    dsub = data.add_subparsers(dest="data_cmd", required=True)
    v = dsub.add_parser("validate", help="validate a JSONL file of samples against the schema")
    v.add_argument("file")
    v.add_argument("--check-images", action="store_true", help="also resolve every image source")
    v.set_defaults(func=_data_validate)


def _data_validate(a) -> int:
    from pathlib import Path

    from .images import resolve_path
    from .schema import read_samples

    samples = read_samples(a.file)
    if a.check_images:
        for s in samples:
            if s.image.source:
                try:
                    resolve_path(s.image.source, Path(a.file).parent)
                except SSUIError as e:
                    raise SSUIError(f"{a.file}: record {s.id!r}: {e}") from None
    print(f"{a.file}: {len(samples)} valid records")
    return 0


# Each group registers itself here; later issues add theirs (generate, judge, eval, explore, train).
GROUPS: list[Callable] = [_add_book, _add_data]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ssui", description="SSUI Book: implicit reasoning safety of VLMs")
    sub = p.add_subparsers(dest="cmd", required=True)
    for add in GROUPS:
        add(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    a = parser.parse_args(argv)
    try:
        return a.func(a)
    except SSUIError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
