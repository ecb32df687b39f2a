"""PNG plots of a run report (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _hist(ax, x, title, xlabel, bins=40, vline=None):
    x = np.asarray(x, float)
    x = x[np.isfinite(x)]
    if len(x):
        ax.hist(x, bins=bins, color="#4C72B0")
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    if vline is not None:
        ax.axvline(vline, color="#C44E52", ls="--", label=f"cap {vline}")
        ax.legend()
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("count")


def write_plots(data, out_dir: Path) -> list[tuple[str, str]]:
    """Write every plot the data supports; returns ``[(file name, caption)]``."""
    plt = _plt()
    s, written = data.series, []

    def save(fig, name, caption):
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=90)
        plt.close(fig)
        written.append((name, caption))

    if data.has_scores and data.families:
        keys = [k for k in ("gml candidate rate", "acc candidate rate", "acc GML-fallback rate", "acc original rate",
                            "gml original rate") if k in data.families[0]]
        fams = [f["family"] for f in data.families]
        fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(fams)), 4))
        width = 0.8 / max(len(keys), 1)
        for i, k in enumerate(keys):
            ax.bar(np.arange(len(fams)) + i * width, [f.get(k) or 0 for f in data.families], width, label=k)
        ax.set_xticks(np.arange(len(fams)) + width * (len(keys) - 1) / 2, fams)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("fraction of questions")
        ax.legend(fontsize=8)
        ax.set_title("per-family candidate / fallback rates")
        save(fig, "family_rates.png", "Per-family candidate and fallback rates")
    if "delta" in s:
        fig, ax = plt.subplots(figsize=(6, 4))
        _hist(ax, s["delta"], "delta_k = (log pi0 - log q) / T_k", "delta_k")
        save(fig, "delta.png", "Distribution of delta_k")
        fig, axes = plt.subplots(1, 2 if "log_rho" in s else 1, figsize=(11 if "log_rho" in s else 6, 4), squeeze=False)
        _hist(axes[0][0], s["gml_score"], "GML score", "mean answer log-prob + delta_k")
        if "log_rho" in s:
            _hist(axes[0][1], s["log_rho"], "Acc score log rho_k (acc_k > 0)", "log acc_k + delta_k")
        save(fig, "scores.png", "Distribution of the estimator scores")
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        _hist(axes[0], s["think_tokens"], "trace length", "think tokens", vline=data.options.max_think_tokens)
        _hist(axes[1], s["answer_tokens"], "answer length", "answer tokens")
        save(fig, "lengths.png", "Trace and answer lengths")
        fig, ax = plt.subplots(figsize=(6, 4))
        series = [("gml", s.get("selected_seed_gml")), ("acc", s.get("selected_seed_acc"))]
        series = [(n, v) for n, v in series if v is not None]
        seeds = np.unique(np.concatenate([v for _, v in series])) if series else np.zeros(0, int)
        for i, (name, v) in enumerate(series):
            counts = [int(np.sum(v == k)) for k in seeds]
            ax.bar(np.arange(len(seeds)) + i * 0.4, counts, 0.4, label=name)
        ax.set_xticks(np.arange(len(seeds)) + 0.2 * (len(series) - 1), [str(k) for k in seeds])
        ax.set_xlabel("selected seed k")
        ax.set_ylabel("questions")
        ax.legend()
        ax.set_title("selected-seed histogram")
        save(fig, "selected_seed.png", "Which seed the estimator selected")
        fig, ax = plt.subplots(figsize=(6, 4))
        _hist(ax, s["ess"], "effective sample size of snis weights", "1 / sum w_k^2", bins=30)
        save(fig, "ess.png", "Effective sample size of the self-normalised weights (GML log weight)")
    if "acc" in s:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        _hist(axes[0], s["acc"], "acc_k", "fraction of rollouts correct", bins=20)
        fams = [f["family"] for f in data.families]
        axes[1].bar(fams, [f.get("rollouts correct rate") or 0 for f in data.families], color="#55A868")
        axes[1].set_ylim(0, 1.05)
        axes[1].set_title("verification: rollouts correct, per family")
        save(fig, "verification.png", "acc_k and per-family verification rates")
    curves = [c for c in getattr(data, "loss_curves", []) if c.steps]
    if curves:
        fig, ax = plt.subplots(figsize=(7, 4))
        for c in curves:
            ax.plot(c.steps, c.losses, marker="o" if len(c.steps) < 30 else None, ms=3, label=c.model)
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("training loss")
        ax.set_title("training loss (trainer_state.json log_history)")
        ax.legend(fontsize=8)
        save(fig, "training_loss.png", "Training-loss curves of the run's models")
    return written
