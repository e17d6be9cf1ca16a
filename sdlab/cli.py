"""`sdlab` on the command line: one subcommand per job; every SdlabError becomes one line and exit 2.

>>> sdlab trace --arch sd15 --component unet --depth 2
>>> sdlab generate --model tiny --prompt "a red circle on the left" --seed 0 --steps 20 --out red.png
"""
import argparse
import sys

from .errors import SdlabError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except SdlabError as err:
        print(f"sdlab: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
