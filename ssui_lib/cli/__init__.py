"""The command line: ``python -m ssui_lib COMMAND …`` (also installed as ``ssui``).

Every command has --help, exits non-zero with a one-line reason on bad input, and writes its
results atomically. Commands are registered by small ``_add_*`` functions, one per group.
"""
from __future__ import annotations

import argparse
import sys
from typing import Callable

from ssui_lib.book.compare import compare_report  # light (csv, json): imported at the top
from ssui_lib.core.errors import SSUIError


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
    run.add_argument("--dry-run", action="store_true",
                     help="run nothing: print for every selected chapter whether it would run or be skipped, and why")
    run.add_argument("--config", default="book.toml", help="path to book.toml (default: ./book.toml)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=_book_run)
    build = bsub.add_parser("build", help="render executed notebooks as an offline static HTML book")
    build.add_argument("--profile", required=True)
    build.add_argument("--config", default="book.toml")
    build.add_argument("--out", help="output folder (default: _build/html/<profile>)")
    build.add_argument("--with-solutions", action="store_true",
                       help="a teacher's copy: each exercise followed by its reference solution "
                            "(default folder _build/html/<profile>-teacher)")
    build.set_defaults(func=_book_build)
    tim = bsub.add_parser("timings", help="where the time went: seconds per chapter and phase of the last run "
                                          "(markdown, from papermill_runs/<profile>/manifest.json)")
    tim.add_argument("--profile", default="smoke", help="the profile whose last run to show (default: smoke)")
    tim.add_argument("--manifest", help="a manifest.json to read instead of papermill_runs/<profile>/manifest.json")
    tim.add_argument("--inclusive", action="store_true",
                     help="inclusive seconds per phase (a judge's generation also counted as judging)")
    tim.set_defaults(func=_book_timings)
    cmp = bsub.add_parser("compare", help="compare two runs' tables/*.csv and results.json value by value "
                                          "(exit 1 when they differ)")
    cmp.add_argument("a", metavar="A_DIR", help="a run folder (papermill_runs/<profile>) or a checkout holding one")
    cmp.add_argument("b", metavar="B_DIR", help="the other run folder or checkout")
    cmp.add_argument("--profile", default="smoke",
                     help="the profile under a checkout's papermill_runs/ (default: smoke)")
    cmp.add_argument("--atol", type=float, default=0.0, help="absolute tolerance for numbers (default 0: exact)")
    cmp.add_argument("--rtol", type=float, default=0.0, help="relative tolerance for numbers (default 0: exact)")
    cmp.set_defaults(func=_book_compare)


def _book_compare(a) -> int:
    text, same = compare_report(a.a, a.b, profile=a.profile, atol=a.atol, rtol=a.rtol)
    print(text)
    return 0 if same else 1


def _book_timings(a) -> int:
    from pathlib import Path

    from ssui_lib.book.timings import timings_report

    print(timings_report(Path(a.manifest or Path("papermill_runs") / a.profile / "manifest.json"),
                         inclusive=a.inclusive))
    return 0


def _book_run(a) -> int:
    from ssui_lib.book.runner import plan_book, run_book

    ids = [x.strip() for x in a.chapters.split(",") if x.strip()] if a.chapters is not None else None
    if a.dry_run:
        for c in plan_book(a.profile, config=a.config, chapters=ids, sets=a.set, resume=a.resume):
            print(f"{c['id']} {'would run' if c['action'] == 'run' else 'skip':9s}  {c['reason']}")
        return 0
    m = run_book(a.profile, config=a.config, chapters=ids, sets=a.set, resume=a.resume, progress=not a.no_progress)
    for cid, c in m["chapters"].items():
        extra = " (unchanged, skipped)" if c.get("resumed") else ""
        print(f"{cid} {c['status']:7s} {c.get('duration_s', 0):8.1f}s  {c['title']}{extra}")
    print(f"book [{m['profile']}]: {m['status']} in {m['duration_s']:.1f}s; manifest papermill_runs/{m['profile']}/manifest.json")
    return 0


def _book_build(a) -> int:
    from pathlib import Path

    from ssui_lib.book.runner import build_book

    index = build_book(a.profile, config=a.config, out_dir=Path(a.out) if a.out else None,
                       with_solutions=a.with_solutions)
    print(f"HTML book: {index}")
    return 0


def _add_data(sub) -> None:
    data = sub.add_parser("data", help="inspect, validate and export datasets")
    dsub = data.add_subparsers(dest="data_cmd", required=True)
    v = dsub.add_parser("validate", help="validate a JSONL file of samples against the schema")
    v.add_argument("file")
    v.add_argument("--check-images", action="store_true", help="also resolve every image source")
    v.set_defaults(func=_data_validate)
    st = dsub.add_parser("stats", help="counts per category (IRS / twin) and per split")
    _dataset_args(st)
    st.add_argument("--json", action="store_true",
                    help='print {"total", "by_category": {CATEGORY: {"irs", "twin"}}, "by_split": {SPLIT: n}}')
    st.set_defaults(func=_data_stats)
    ex = dsub.add_parser("export", help="export a dataset as a Hugging Face dataset or TRL preference triples "
                                        "(written with save_to_disk, atomically)")
    ex.add_argument("out", help="output folder (replaced only if it holds an earlier export)")
    ex.add_argument("--to", required=True, choices=("hf", "trl"),
                    help="hf: one flat row per record; trl: {prompt, chosen, rejected, images} (twins skipped)")
    _dataset_args(ex)
    ex.add_argument("--chain", action="store_true",
                    help="trl: chosen = the six-step chain + verdict + answer (records without a chain are skipped)")
    ex.set_defaults(func=_data_export)


def _dataset_args(p) -> None:
    p.add_argument("--dataset", default="bundled:all",
                   help="dataset spec: bundled:train|dev|test|all, jsonl:PATH, siuo-gen:PATH, siuo-mcqa:PATH, "
                        "vlsbench:PATH, mssbench:PATH (default: bundled:all)")
    p.add_argument("--image-dir", help="image folder of an external dataset (default: beside its JSON file)")


def _data_validate(a) -> int:
    from ssui_lib.data.bundled import validate_file

    samples = validate_file(a.file, check_images=a.check_images)
    print(f"{a.file}: {len(samples)} valid records")
    return 0


def _data_stats(a) -> int:
    import json

    from ssui_lib.data.bundled import dataset_stats, load_dataset, stats_table

    stats = dataset_stats(load_dataset(a.dataset, a.image_dir))
    print(json.dumps(stats, indent=1, ensure_ascii=False) if a.json else stats_table(stats))
    return 0


def _data_export(a) -> int:
    from pathlib import Path

    from ssui_lib.data.bundled import load_dataset
    from ssui_lib.data.export import describe_skipped, export

    samples = load_dataset(a.dataset, a.image_dir)
    # relative file: sources of a JSONL dataset resolve against the JSONL file's folder
    base = Path(a.dataset.split(":", 1)[1]).parent if a.dataset.startswith("jsonl:") else None
    out, n, skipped = export(samples, a.to, a.out, chain=a.chain, base_dir=base)
    note = f"; skipped {describe_skipped(skipped)}" if skipped else ""
    print(f"{a.dataset}: {n} rows ({a.to}) written to {out}{note}")
    return 0


# Each group registers itself here. The heavy groups (they import torch) are modules with an
# ``add_commands(sub)``; they are imported only when their command is asked for (or for the
# top-level --help), so that ``ssui data …`` and ``ssui book …`` start without loading torch.
GROUPS: list[Callable] = [_add_book, _add_data]
LAZY_GROUPS: dict[str, tuple[str, ...]] = {
    "ssui_lib.cli.train": ("train",),
    "ssui_lib.cli.explore": ("explore",),
    "ssui_lib.cli.evaluate": ("generate", "judge", "eval"),
    "ssui_lib.cli.shards": ("merge",),
}


def _lazy_modules(argv: list[str] | None) -> list[str]:
    """The heavy modules the command line needs: the one owning its command, or all of them
    when the command is not known yet (no command, --help, a typo: argparse lists every choice)."""
    words = [w for w in (sys.argv[1:] if argv is None else argv) if not w.startswith("-")]
    if words and words[0] in ("book", "data"):
        return []
    owner = [mod for mod, cmds in LAZY_GROUPS.items() if words and words[0] in cmds]
    return owner or list(LAZY_GROUPS)


def build_parser(argv: list[str] | None = None, *, all_groups: bool = False) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ssui", description="SSUI Book: implicit reasoning safety of VLMs")
    sub = p.add_subparsers(dest="cmd", required=True)
    for add in GROUPS:
        add(sub)
    for mod in (list(LAZY_GROUPS) if all_groups else _lazy_modules(argv)):
        __import__(mod, fromlist=["add_commands"]).add_commands(sub)
    return p


DEBUG_ENV = "SSUI_DEBUG"  # "1": let errors propagate with their traceback (for bug reports)
# Commands whose --out is locked for the whole run (one writer per output; `book run` locks its
# profile's run folder itself). A second run on the same output refuses at once, naming the pid.
LOCKED_COMMANDS = ("generate", "judge", "eval", "explore", "train", "data", "merge")


def _run_command(a) -> int:
    """Run the parsed command, holding the lock of its --out when it writes one."""
    from ssui_lib.core.lock import output_lock

    import os

    out = getattr(a, "out", None)
    # `train` under accelerate launch / torchrun: the main process (RANK 0) holds the lock and is the only writer
    worker = a.cmd == "train" and os.environ.get("RANK", "0").strip() not in ("", "0")
    if a.cmd not in LOCKED_COMMANDS or not isinstance(out, str) or not out or worker:
        return a.func(a)
    with output_lock(out):
        return a.func(a)


def _one_line(e: BaseException) -> str:
    """An error as one line: SSUIError as is; an OS or decoding error with its file and cause."""
    if isinstance(e, SSUIError):
        text = str(e)
    elif isinstance(e, OSError) and e.filename is not None:
        text = f"{e.filename}: {e.strerror or type(e).__name__}"
    elif isinstance(e, UnicodeDecodeError):
        text = f"input is not UTF-8 text (byte 0x{e.object[e.start]:02x} at offset {e.start})"
    else:
        text = f"{type(e).__name__}: {e}"
    return " ".join(text.split())  # newlines of a quoted message never break the one line


def main(argv: list[str] | None = None) -> int:
    """Run one command; every error from its input becomes one ``error: …`` line on stderr and
    exit status 2 (130 on Ctrl-C), never a traceback (set SSUI_DEBUG=1 to see one)."""
    import os

    parser = build_parser(argv)
    a = parser.parse_args(argv)
    try:
        return _run_command(a)
    except (SSUIError, OSError, UnicodeDecodeError, ValueError) as e:
        if os.environ.get(DEBUG_ENV) == "1":
            raise
        print(f"error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    finally:
        _print_fault_summary()


def _print_fault_summary() -> None:
    """The API faults the command met (429s, 5xx, timeouts, resets, malformed bodies), if any."""
    api = sys.modules.get("ssui_lib.models.openai_compat")  # only if an API model was used
    line = api.fault_summary() if api is not None else None
    if line:
        print(line, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
