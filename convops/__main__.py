"""python -m convops {check,tour}"""
import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convops")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="verify every op on this machine's devices against torch")
    check.add_argument("--device", action="append", choices=["cpu", "cuda"],
                       help="device to check (repeatable); default: cpu and, if present, cuda")
    sub.add_parser("tour", help="the seed notes' worked examples")
    args = parser.parse_args(argv)
    if args.command == "tour":
        from .tour import run
        run()
        return 0
    from .check import run
    return 0 if run(args.device) else 1


if __name__ == "__main__":
    sys.exit(main())
