"""The host and library versions the plugin was tested with: one table, read by the adapters and docs.

A host outside its tested set keeps running unpatched (one warning); a plugin feature used on it is
refused with the version to install. transformers is not patched, but the loss relies on its Trainer's
``compute_loss_func`` contract (labels unshifted, no division by accumulation steps), so an untested
transformers only warns. docs/install.md lists the same combinations.
"""

from __future__ import annotations

#: distribution name -> tested versions (the last one is what the setup installs)
TESTED: dict[str, tuple[str, ...]] = {
    # 0.9.6.dev0: LLaMA-Factory main, checked at commit ff6d4d12e (2026-12-02); a dev label covers many
    # commits, so the adapter's seam checks (hparams._require_patches) still refuse a main that moved a seam
    "llamafactory": ("0.9.6.dev0", "0.9.5"),
    "skythought": ("0.1.0",),
    # 5.5.4 is installed (inside LLaMA-Factory main's range, which excludes 5.6.0 for a FlashAttention-2 bug)
    "transformers": ("5.6.0", "5.5.4"),
}
