"""The command line: ``xdownscale demo`` and ``xdownscale run CONFIG.yaml``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ..errors import XDownscaleError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xdownscale", description=(
        "Transfer-encoder generative downscaling of gridded fields (MERRA-2 -> G5NR)."))
    p.add_argument("--version", action="store_true", help="print the version and exit")
    sub = p.add_subparsers(dest="command")
    d = sub.add_parser("demo", help="the main job on the embedded synthetic data")
    d.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    d.add_argument("--quick", action="store_true",
                   help="one season (JJA) and two models (ddpm, unet): the shortest run of the whole job")
    d.add_argument("--area", default="A1", choices=["A0", "A1"], help="study area (default A1)")
    d.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    r = sub.add_parser("run", help="the main job on your own files, from a YAML config",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=_yaml_keys())
    r.add_argument("config", help="path to the YAML configuration")
    r.add_argument("--check", action="store_true",
                   help="validate the configuration and the files' metadata, then stop")
    return p


def _yaml_keys() -> str:
    from .runconfig import _REQUIRED, KEYS

    width = max(map(len, KEYS)) + 2
    lines = [f"  {k + ':':<{width}}{v}{' (required)' if k in _REQUIRED else ''}"
             for k, v in KEYS.items()]
    return "YAML keys:\n" + "\n".join(lines)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (so test capture and redirection work)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):
        pass


def _setup_logging():
    """Show the progress of the job and of every training epoch on stderr, also when stderr is
    not a terminal (progress bars are only drawn on a terminal). Returns the undo."""
    logger = logging.getLogger("xdownscale")
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("[%(asctime)s] %(message)s", "%H:%M:%S"))
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def undo() -> None:
        logger.removeHandler(handler)
        logger.setLevel(level)

    return undo


def main(argv: list[str] | None = None) -> int:
    undo = _setup_logging()
    try:
        return _main(argv)
    finally:
        undo()


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        from .. import __version__

        print(__version__)
        return 0
    if args.command is None:
        _parser().print_help()
        return 2
    try:
        if args.command == "demo":
            from .job import demo_spec, run_job

            path = run_job(demo_spec(Path(args.out), args.quick, area=args.area, seed=args.seed))
        else:
            from .job import run_job
            from .runconfig import check_data, load_run_config

            spec = load_run_config(args.config)
            lines = check_data(spec)  # cheap (metadata): a typo must not surface after fitting
            if args.check:
                print(f"{args.config}: valid ({len(spec.areas)} area(s), models {spec.models})")
                for line in lines:
                    print(f"  {line}")
                return 0
            path = run_job(spec)
    except XDownscaleError as err:
        print(f"xdownscale: error: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # an unwritable output folder, a full disk: no traceback for those
        print(f"xdownscale: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nxdownscale: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    print(f"report: {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
