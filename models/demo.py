"""python -m models.demo: the main job. Trains LeNet-5 on the offline mnist5k digits with
convops layers and then with torch.nn layers (same seed, same data order), and prints
test accuracy, final loss and images/s for each; plots go to runs/demo/<backend>/."""
import argparse
import sys

from .train import parse_args, run

TARGET_ACCURACY = 0.95
MAX_GAP = 0.01


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m models.demo")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--no-progress", action="store_true")
    opts = p.parse_args(argv)
    results = {}
    for backend in ("convops", "torch"):
        print(f"== LeNet-5 on mnist5k with {backend} layers ==", flush=True)
        args = parse_args(["--model", "lenet5", "--dataset", "mnist5k", "--epochs", str(opts.epochs),
                           "--backend", backend, "--seed", "0", "--out", f"{opts.out}/{backend}"]
                          + (["--no-progress"] if opts.no_progress else []))
        results[backend] = run(args).history[-1]
    print()
    print(f"{'backend':<10} {'test accuracy':>14} {'final train loss':>17} {'images/s':>10}")
    for backend, r in results.items():
        print(f"{backend:<10} {r['test_acc']:>14.4f} {r['train_loss']:>17.4f} {r['images_per_s']:>10.0f}")
    ours, theirs = results["convops"]["test_acc"], results["torch"]["test_acc"]
    ok = ours >= TARGET_ACCURACY and abs(ours - theirs) <= MAX_GAP
    print(f"\nconvops LeNet-5: {ours:.2%} test accuracy (target >= {TARGET_ACCURACY:.0%}), "
          f"{abs(ours - theirs) * 100:.2f} points from torch (target <= {MAX_GAP * 100:.0f}): "
          f"{'PASS' if ok else 'FAIL'}; plots in {opts.out}/<backend>/")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
