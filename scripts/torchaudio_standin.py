"""Write the torchaudio import stand-in into the current environment (CPU test environments only).

LLaMA-Factory 0.9.5 imports torchaudio unconditionally (data/mm_plugin.py:30) although the text SFT
path never uses it, and no PyPI torchaudio loads beside torch 2.13 CPU. The stand-in lets the import
succeed and makes any real use fail loudly. It is skipped when a real torchaudio is importable.
"""

import importlib.util
import sysconfig
from pathlib import Path

BODY = '''"""torchaudio IMPORT STAND-IN (variational-reasoning CPU test environment; not real torchaudio).

Written by scripts/torchaudio_standin.py so that LLaMA-Factory 0.9.5 can be imported where no
torchaudio wheel works; any attribute access raises.
"""

__vr_standin__ = True


def __getattr__(name):
    raise ImportError(f"torchaudio.{name}: this environment only has the variational-reasoning import stand-in")
'''

spec = importlib.util.find_spec("torchaudio")
if spec is None or (spec.origin and "__vr_standin__" in Path(spec.origin).read_text(errors="ignore")):
    target = Path(sysconfig.get_paths()["purelib"]) / "torchaudio" / "__init__.py"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(BODY)
