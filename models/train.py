"""python -m models.train: train a zoo model on a torchvision dataset (or the offline
mnist5k), with per-epoch evaluation, best/last checkpoints, exact --resume, metrics.json
and PNG plots. Under `torchrun --nproc_per_node=N` it trains with DistributedDataParallel
(gloo on CPU, nccl on GPU) and a DistributedSampler; rank 0 writes the outputs."""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time

import torch
import torch.distributed as dist
import torch.nn as tnn
from torch.utils.data import DataLoader, Subset
from torch.utils.data.distributed import DistributedSampler

from . import BUILDERS
from .data import DATASETS, DatasetMissing, load
from .googlenet import GoogLeNetOutputs


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m models.train", description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", default="lenet5", choices=sorted(BUILDERS))
    p.add_argument("--dataset", default="mnist5k", choices=DATASETS)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", default="adam", choices=["adam", "sgd"])
    p.add_argument("--momentum", type=float, default=0.9, help="for sgd")
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--backend", default="convops", choices=["convops", "torch"])
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", default="data")
    p.add_argument("--download", action="store_true", help="fetch a torchvision dataset that is not on disk")
    p.add_argument("--out", default="runs/train", help="folder for checkpoints, metrics.json and plots")
    p.add_argument("--resume", default=None, metavar="CHECKPOINT", help="continue from a last.pt/best.pt")
    p.add_argument("--amp", action="store_true", help="autocast: bfloat16 on cpu, float16 on cuda")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="train on the first N samples")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no-plots", action="store_true")
    return p.parse_args(argv)


def build_model(args, data) -> tnn.Module:
    kwargs = dict(num_classes=data.num_classes, in_channels=data.in_channels, backend=args.backend)
    if args.model == "lenet5":
        kwargs["image_size"] = data.image_size
    return BUILDERS[args.model](**kwargs)


def make_optimizer(args, model):
    if args.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum,
                               weight_decay=args.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)


def _loss(criterion, output, target):
    if isinstance(output, GoogLeNetOutputs):  # the auxiliary classifiers weigh 0.3, as in the paper
        return criterion(output.logits, target) + 0.3 * (criterion(output.aux_logits1, target) +
                                                         criterion(output.aux_logits2, target)), output.logits
    return criterion(output, target), output


class Trainer:
    def __init__(self, args):
        self.args = args
        self.distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
        if self.distributed and not dist.is_initialized():
            dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
        self.rank = dist.get_rank() if self.distributed else 0
        self.world = dist.get_world_size() if self.distributed else 1
        if args.device == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        self.device = torch.device(args.device, torch.cuda.current_device()) if args.device == "cuda" \
            else torch.device("cpu")
        self.main = self.rank == 0
        torch.manual_seed(args.seed)
        random.seed(args.seed)
        self.data = load(args.dataset, args.data_dir, args.download, args.seed)
        self.train_set = self.data.train if args.limit is None else Subset(
            self.data.train, range(min(args.limit, len(self.data.train))))
        self.model = build_model(args, self.data).to(self.device)
        if args.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net = tnn.parallel.DistributedDataParallel(self.model) if self.distributed else self.model
        self.optimizer = make_optimizer(args, self.model)
        self.scaler = torch.amp.GradScaler("cuda", enabled=args.amp and args.device == "cuda")
        self.criterion = tnn.CrossEntropyLoss()
        self.history, self.start_epoch, self.best_acc = [], 0, -1.0
        if args.resume:
            self._restore(args.resume)

    # ------------------------------------------------------------ data
    def _loader(self, dataset, epoch, train):
        batch = self.args.batch_size if train else max(256, self.args.batch_size)
        if self.distributed:
            sampler = DistributedSampler(dataset, num_replicas=self.world, rank=self.rank, shuffle=train,
                                         seed=self.args.seed)
            sampler.set_epoch(epoch)
            return DataLoader(dataset, batch, sampler=sampler, num_workers=self.args.workers)
        # the order of each epoch depends on (seed, epoch) only, so a resumed run sees the same batches
        generator = torch.Generator().manual_seed(self.args.seed * 1000 + epoch)
        return DataLoader(dataset, batch, shuffle=train, generator=generator if train else None,
                          num_workers=self.args.workers)

    def _prepare(self, x, y):
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if self.args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y

    def _autocast(self):
        dtype = torch.bfloat16 if self.args.device == "cpu" else torch.float16
        return torch.autocast(self.args.device, dtype=dtype, enabled=self.args.amp)

    # ------------------------------------------------------------ loops
    def train_epoch(self, epoch):
        self.net.train()
        total_loss, correct, seen, start = 0.0, 0, 0, time.perf_counter()
        batches = self._loader(self.train_set, epoch, train=True)
        progress = _progress(batches, f"epoch {epoch + 1}/{self.args.epochs}", self.args.no_progress or not self.main)
        for x, y in progress:
            x, y = self._prepare(x, y)
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                loss, logits = _loss(self.criterion, self.net(x), y)
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            total_loss += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
            rate = seen * self.world / (time.perf_counter() - start)
            if hasattr(progress, "set_postfix"):
                progress.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}", img_s=f"{rate:.0f}")
        return total_loss / max(seen, 1), correct / max(seen, 1), seen * self.world / (time.perf_counter() - start)

    @torch.no_grad()
    def evaluate(self):
        self.net.eval()
        total_loss, correct, seen = 0.0, 0, 0
        for x, y in self._loader(self.data.test, 0, train=False):
            x, y = self._prepare(x, y)
            with self._autocast():
                logits = self.model(x)
            total_loss += self.criterion(logits.float(), y).item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
        return total_loss / max(seen, 1), correct / max(seen, 1)

    def run(self):
        for epoch in range(self.start_epoch, self.args.epochs):
            train_loss, train_acc, rate = self.train_epoch(epoch)
            test_loss, test_acc = self.evaluate()
            row = dict(epoch=epoch + 1, train_loss=train_loss, train_acc=train_acc, test_loss=test_loss,
                       test_acc=test_acc, images_per_s=rate)
            self.history.append(row)
            if self.main:
                print(f"epoch {epoch + 1}: train loss {train_loss:.4f} acc {train_acc:.4f} | test loss "
                      f"{test_loss:.4f} acc {test_acc:.4f} | {rate:.0f} images/s", flush=True)
                self._save(epoch, test_acc)
        if self.main:
            self._write_outputs()
        return self.history

    # ------------------------------------------------------------ outputs
    def _checkpoint(self, epoch):
        return dict(model=self.model.state_dict(), optimizer=self.optimizer.state_dict(), epoch=epoch,
                    args=vars(self.args), history=self.history, best_acc=self.best_acc,
                    rng=torch.get_rng_state(), scaler=self.scaler.state_dict())

    def _save(self, epoch, test_acc):
        os.makedirs(self.args.out, exist_ok=True)
        if test_acc > self.best_acc:
            self.best_acc = test_acc
            torch.save(self._checkpoint(epoch), os.path.join(self.args.out, "best.pt"))
        torch.save(self._checkpoint(epoch), os.path.join(self.args.out, "last.pt"))

    def _restore(self, path):
        state = torch.load(path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        self.history, self.best_acc, self.start_epoch = state["history"], state["best_acc"], state["epoch"] + 1

    def _write_outputs(self):
        os.makedirs(self.args.out, exist_ok=True)
        with open(os.path.join(self.args.out, "metrics.json"), "w") as f:
            json.dump(dict(args=vars(self.args), history=self.history), f, indent=1)
        if not self.args.no_plots and self.history:
            plot(self.history, self.model, self.args.out)


def _progress(iterable, description, disable):
    if disable or not sys.stderr.isatty():  # bars only on a terminal, not in logs
        return iterable
    from tqdm import tqdm
    return tqdm(iterable, desc=description, leave=False, dynamic_ncols=True)


def first_conv(model):
    return next((m for m in model.modules() if isinstance(m, tnn.Conv2d)), None)


def plot(history, model, out_dir):
    """curves.png (loss and accuracy per epoch) and filters.png (the first layer's filters)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    epochs = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(epochs, [h["train_loss"] for h in history], label="train")
    ax1.plot(epochs, [h["test_loss"] for h in history], label="test")
    ax1.set(xlabel="epoch", ylabel="loss", title="loss")
    ax2.plot(epochs, [h["train_acc"] for h in history], label="train")
    ax2.plot(epochs, [h["test_acc"] for h in history], label="test")
    ax2.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax1, ax2):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "curves.png"), dpi=100)
    plt.close(fig)
    conv = first_conv(model)
    if conv is None:
        return
    weights = conv.weight.detach().float().cpu()
    count = min(weights.shape[0], 64)
    cols = min(count, 8)
    rows = (count + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.2), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < count:
            w = weights[i]
            image = w[0] if w.shape[0] != 3 else w.permute(1, 2, 0)
            image = (image - image.min()) / (image.max() - image.min() + 1e-12)
            ax.imshow(image.numpy(), cmap="gray" if image.dim() == 2 else None)
    fig.suptitle("first-layer filters")
    fig.savefig(os.path.join(out_dir, "filters.png"), dpi=100)
    plt.close(fig)


def run(args) -> Trainer:
    trainer = Trainer(args)
    trainer.run()
    return trainer


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        trainer = run(args)
    except DatasetMissing as exc:
        print(f"models.train: {exc}", file=sys.stderr)
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if trainer.main and trainer.history:
        last = trainer.history[-1]
        print(f"done: test accuracy {last['test_acc']:.4f}, best {trainer.best_acc:.4f}; outputs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
