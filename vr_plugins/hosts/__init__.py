"""Host adapters: the only code that touches LLaMA-Factory or SkyThought internals (version-guarded)."""
