#!/usr/bin/python3
"""Plot a training run's curves from RUN_DIR/log.jsonl (one JSON object per line).

  python3 tools/plot_log.py RUN_DIR [--out RUN_DIR/curves.png] [--smooth 0.9]
  python3 tools/plot_log.py --selftest

Lines with "kind": "train" give step, loss and the terms l1, ssim, lpips (any may be missing or null)
and lr; lines with "kind": "val" give step, psnr and optionally psnr_baseline, ssim, lpips. Other kinds,
unknown keys, non-numeric values and lines that do not parse (a run killed mid-write leaves a truncated
last line) are skipped; a step logged twice (a resumed run repeats steps) keeps its last line.

The figure: loss and each loss term against step (log y; raw values faint, an exponential moving
average solid), the learning rate, validation PSNR (the baseline dashed when present), and validation
SSIM / LPIPS when present, the expression sweep (psnr_expr, psnr_expr_fixed) and the mouth regions
(psnr_mouth, psnr_expr_mouth, psnr_expr_mouth_fixed) beside the PSNR, and per
parameter group ("groups" on every log_every-th train line) the gradient RMS and AdamW's step share. Needs Debian's python3-matplotlib (Agg backend, no display).
"""
import argparse
import json
import math
import os
import sys
import tempfile

TRAIN_TERMS = ("loss", "l1", "ssim", "lpips")


def _num(v):
    """A finite float, or None (missing, null, NaN, inf, bool, string...)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def read_log(path):
    """Returns (train, val, skipped): train/val are lists of dicts sorted by step (the last line of a
    repeated step wins), skipped is a list of (line number, reason)."""
    train, val, skipped = {}, {}, []
    with open(path, "rb") as f:
        data = f.read()
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            skipped.append((lineno, "not JSON (%s)" % e.__class__.__name__))
            continue
        if not isinstance(rec, dict):
            skipped.append((lineno, "not an object"))
            continue
        kind = rec.get("kind")
        if kind not in ("train", "val"):
            continue  # other kinds (e.g. run metadata) are not curves
        step = _num(rec.get("step"))
        if step is None:
            skipped.append((lineno, "no numeric step"))
            continue
        (train if kind == "train" else val)[step] = rec
    return ([train[s] for s in sorted(train)], [val[s] for s in sorted(val)], skipped)


def series(recs, key, positive=False):
    """(steps, values) for the records where key is a finite number (> 0 when positive)."""
    xs, ys = [], []
    for r in recs:
        v = _num(r.get(key))
        if v is None or (positive and v <= 0):
            continue
        xs.append(_num(r["step"]))
        ys.append(v)
    return xs, ys


def group_series(recs, key, positive=False):
    """{group: (steps, values)} of recs' "groups" objects (train lines every log_every steps)."""
    out = {}
    for r in recs:
        groups = r.get("groups")
        if not isinstance(groups, dict):
            continue
        for name, g in groups.items():
            v = _num(g.get(key)) if isinstance(g, dict) else None
            if v is None or (positive and v <= 0):
                continue
            xs, ys = out.setdefault(str(name), ([], []))
            xs.append(_num(r["step"]))
            ys.append(v)
    return out


def ema(ys, beta):
    """Bias-corrected exponential moving average (as TensorBoard's smoothing)."""
    out, acc = [], 0.0
    for i, y in enumerate(ys, 1):
        acc = beta * acc + (1 - beta) * y
        out.append(acc / (1 - beta ** i))
    return out


def _matplotlib():
    try:
        import matplotlib
    except ImportError:
        sys.exit("plot_log.py: matplotlib is missing: install Debian's python3-matplotlib "
                 "(apt-get install python3-matplotlib)")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot(run_dir, out, smooth=0.9, title=None):
    """Reads run_dir/log.jsonl and writes the figure to out (atomically). Returns a summary dict."""
    log = os.path.join(run_dir, "log.jsonl")
    train, val, skipped = read_log(log)
    for lineno, why in skipped:
        print("plot_log.py: %s:%d: skipped: %s" % (log, lineno, why), file=sys.stderr)
    if not train and not val:
        raise SystemExit("plot_log.py: %s: no train or val lines" % log)
    plt = _matplotlib()
    fig, axes = plt.subplots(3, 2, figsize=(13, 12.5))
    (ax_loss, ax_lr), (ax_psnr, ax_vq), (ax_grad, ax_frac) = axes
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    # losses: raw faint, smoothed solid, log y (only positive values can be drawn)
    drawn = 0
    for i, key in enumerate(TRAIN_TERMS):
        xs, ys = series(train, key, positive=True)
        if not xs:
            continue
        c = colors[i % len(colors)]
        ax_loss.plot(xs, ys, color=c, alpha=0.25, linewidth=0.8)
        ax_loss.plot(xs, ema(ys, smooth) if len(ys) > 2 else ys, color=c, linewidth=1.6,
                     label="%s (last %.4g)" % (key, ys[-1]))
        drawn += 1
    ax_loss.set_title("training loss and terms")
    if drawn:
        ax_loss.set_yscale("log")
        ax_loss.legend(fontsize=8)
    else:
        ax_loss.text(0.5, 0.5, "no training losses", ha="center", va="center", transform=ax_loss.transAxes)

    xs, ys = series(train, "lr")
    ax_lr.set_title("learning rate")
    if xs:
        ax_lr.plot(xs, ys, color=colors[4 % len(colors)])
        ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    else:
        ax_lr.text(0.5, 0.5, "no learning rate", ha="center", va="center", transform=ax_lr.transAxes)

    xs, ys = series(val, "psnr")
    ax_psnr.set_title("validation PSNR (dB)")
    if xs:
        ax_psnr.plot(xs, ys, marker="o", markersize=3, color=colors[0], label="psnr (last %.2f)" % ys[-1])
        bx, by = series(val, "psnr_baseline")
        if bx:
            ax_psnr.plot(bx, by, linestyle="--", color="gray", label="baseline (last %.2f)" % by[-1])
        for key, style, what in (("psnr_expr", "-", "expression sweep, own codes"),
                                 ("psnr_expr_fixed", ":", "expression sweep, one fixed code")):
            ex, ey = series(val, key)
            if ex:
                ax_psnr.plot(ex, ey, linestyle=style, color=colors[1], marker=".", label="%s (last %.2f)" % (what, ey[-1]))
        # over the mouth regions of the part labels (null without them): the sweep's two lines part where the
        # expression code moves the mouth
        for key, style, what in (("psnr_mouth", "-", "mouth regions, validation targets"),
                                 ("psnr_expr_mouth", "--", "mouth, sweep with own codes"),
                                 ("psnr_expr_mouth_fixed", ":", "mouth, sweep with one fixed code")):
            ex, ey = series(val, key)
            if ex:
                ax_psnr.plot(ex, ey, linestyle=style, color=colors[2], marker=".", label="%s (last %.2f)" % (what, ey[-1]))
        ax_psnr.legend(fontsize=8)
    else:
        ax_psnr.text(0.5, 0.5, "no validation PSNR", ha="center", va="center", transform=ax_psnr.transAxes)

    ax_vq.set_title("validation SSIM / LPIPS")
    vq = 0
    for i, key in enumerate(("ssim", "lpips")):
        xs, ys = series(val, key)
        if xs:
            ax_vq.plot(xs, ys, marker="o", markersize=3, color=colors[(i + 2) % len(colors)],
                       label="%s (last %.4f)" % (key, ys[-1]))
            vq += 1
    if vq:
        ax_vq.legend(fontsize=8)
    else:
        ax_vq.text(0.5, 0.5, "no validation SSIM / LPIPS", ha="center", va="center", transform=ax_vq.transAxes)

    # per parameter group (log.jsonl "groups", every log_every steps): gradient RMS and AdamW's step share
    for ax, key, panel in ((ax_grad, "grad_rms", "gradient RMS per parameter group"),
                           (ax_frac, "step_frac", "share of AdamW's step per group: mean sqrt(v)/(sqrt(v)+eps)")):
        ax.set_title(panel, fontsize=10)
        groups = group_series(train, key, positive=(key == "grad_rms"))
        for i, (name, (xs, ys)) in enumerate(sorted(groups.items())):
            ax.plot(xs, ys, color=colors[i % len(colors)], linewidth=1.2, label="%s (last %.3g)" % (name, ys[-1]))
        if groups:
            if key == "grad_rms":
                ax.set_yscale("log")
            else:
                ax.set_ylim(0, 1.05)
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "no per-group numbers", ha="center", va="center", transform=ax.transAxes)

    for ax in axes.flat:
        ax.set_xlabel("step")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle(title or os.path.abspath(run_dir), fontsize=10)
    fig.tight_layout()
    # write beside the target, then rename: a reader never sees half a PNG
    d = os.path.dirname(os.path.abspath(out))
    fd, tmp = tempfile.mkstemp(prefix=".curves.", suffix=".png", dir=d)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    plt.close(fig)
    return {"train": len(train), "val": len(val), "skipped": len(skipped), "out": out}


# ----------------------------------------------------------------------------- self-test

def selftest():
    fails = 0

    def check(name, ok, detail=""):
        nonlocal fails
        print("%s %-34s %s" % ("PASS" if ok else "FAIL", name, detail))
        fails += 0 if ok else 1

    with tempfile.TemporaryDirectory() as d:
        lines = [json.dumps({"kind": "meta", "config": "tiny.cfg", "seed": 0})]
        for step in range(0, 300, 5):
            loss = 0.5 * math.exp(-step / 120) + 0.02 * ((step * 37) % 11) / 11
            rec = {"kind": "train", "step": step, "loss": loss, "l1": 0.8 * loss, "ssim": 0.1 + 0.5 * loss,
                   "lpips": None if step < 150 else 0.3 * loss, "lr": 3e-4 * min(1, (step + 5) / 50),
                   "grad_norm": 1.3, "imgs_per_s": 40.0}  # unknown keys are ignored
            if step % 25 == 0:
                rec["groups"] = {"expression": {"n": 9, "param_rms": 0.02, "grad_rms": 1e-9 * (1 + step),
                                                "step_frac": min(1.0, 0.1 + step / 300)},
                                 "blocks": {"n": 90, "param_rms": 0.04, "grad_rms": 1e-6, "step_frac": 0.9},
                                 "head": "not an object"}
            lines.append(json.dumps(rec))
            if step % 50 == 0:
                lines.append(json.dumps({"kind": "val", "step": step, "psnr": 14 + 6 * (1 - math.exp(-step / 100)),
                                         "psnr_baseline": 13.5, "ssim": 0.5 + step / 1000, "lpips": 0.4 - step / 2000,
                                         "psnr_mouth": 12 + step / 50, "psnr_expr_mouth": None if step == 0 else 13 + step / 40,
                                         "psnr_expr_mouth_fixed": 13 + step / 45}))
        lines.append(json.dumps({"kind": "train", "step": 100, "loss": 0.25, "l1": 0.2, "ssim": 0.2, "lr": 3e-4}))
        lines.append("this is not json")
        lines.append(json.dumps({"kind": "train", "step": 305, "loss": float("nan"), "lr": 3e-4}))  # NaN: dropped
        lines.append(json.dumps({"kind": "train", "step": 310, "loss": 0.1})[:-9])  # killed mid-write
        run = os.path.join(d, "run")
        os.makedirs(run)
        with open(os.path.join(run, "log.jsonl"), "w") as f:
            f.write("\n".join(lines))  # no final newline, as after a kill

        train, val, skipped = read_log(os.path.join(run, "log.jsonl"))
        check("parse: train/val counts", len(train) == 61 and len(val) == 6,
              "%d train, %d val" % (len(train), len(val)))
        check("parse: skipped bad lines", [n for n, _ in skipped] == [len(lines) - 2, len(lines)], str(skipped))
        check("parse: repeated step keeps last", [r["loss"] for r in train if r["step"] == 100] == [0.25])
        gs = group_series(train, "step_frac")
        check("parse: per-group series", sorted(gs) == ["blocks", "expression"] and len(gs["expression"][0]) == 11  # 0, 25, ..., 275 less step 100, whose line is replaced
              and gs["expression"][1][0] == 0.1, str({k: len(v[0]) for k, v in gs.items()}))
        check("parse: mouth series, null dropped", series(val, "psnr_expr_mouth")[0] == [50, 100, 150, 200, 250] and
              len(series(val, "psnr_mouth")[0]) == 6)
        check("parse: NaN and null are dropped", series(train, "loss")[0][-1] == 295 and
              series(train, "lpips")[0][0] == 150)

        out = os.path.join(run, "curves.png")
        s = plot(run, out)
        with open(out, "rb") as f:
            head = f.read(8)
        check("plot: PNG written", head == b"\x89PNG\r\n\x1a\n" and os.path.getsize(out) > 20000,
              "%d bytes, %s" % (os.path.getsize(out), s))
        check("plot: no temp files left", sorted(os.listdir(run)) == ["curves.png", "log.jsonl"], str(os.listdir(run)))

        # train only, no val, no lr: still a figure
        run2 = os.path.join(d, "run2")
        os.makedirs(run2)
        with open(os.path.join(run2, "log.jsonl"), "w") as f:
            f.write(json.dumps({"kind": "train", "step": 1, "loss": 1.0}) + "\n")
        plot(run2, os.path.join(run2, "c.png"))
        check("plot: a one-line log", os.path.getsize(os.path.join(run2, "c.png")) > 0)

        # an empty log is an error, not an empty figure
        open(os.path.join(run2, "log.jsonl"), "w").close()
        try:
            plot(run2, os.path.join(run2, "c2.png"))
            check("plot: empty log refused", False)
        except SystemExit as e:
            check("plot: empty log refused", "no train or val" in str(e), str(e))
    print("%d failed" % fails)
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_dir", nargs="?", help="the run directory holding log.jsonl")
    ap.add_argument("--out", help="output image (default RUN_DIR/curves.png; any matplotlib format)")
    ap.add_argument("--smooth", type=float, default=0.9, help="EMA factor for the training curves (0 = none)")
    ap.add_argument("--title", help="figure title (default: the run directory)")
    ap.add_argument("--selftest", action="store_true", help="plot a fake log in a temporary directory")
    a = ap.parse_args()
    if a.selftest:
        return selftest()
    if not a.run_dir:
        ap.error("RUN_DIR is required (or --selftest)")
    if not 0 <= a.smooth < 1:
        ap.error("--smooth must be in [0, 1)")
    log = os.path.join(a.run_dir, "log.jsonl")
    if not os.path.isfile(log):
        sys.exit("plot_log.py: %s: no such file" % log)
    s = plot(a.run_dir, a.out or os.path.join(a.run_dir, "curves.png"), a.smooth, a.title)
    print("plot_log.py: %d train and %d val steps (%d lines skipped) -> %s"
          % (s["train"], s["val"], s["skipped"], s["out"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
