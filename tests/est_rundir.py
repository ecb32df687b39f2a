"""Hand-built run directories for the estimator, build and report tests (rows written exactly as given)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vr_plugins.rundir import columns as C


class RunBuilder:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.questions: list[dict] = []
        self.scores: dict[int, list[dict]] = defaultdict(list)
        self.rollouts: dict[int, list[dict]] = defaultdict(list)
        self.verified: dict[int, list[dict]] = defaultdict(list)

    def question(self, idx: int, family: str = "numina") -> RunBuilder:
        self.questions.append({C.PROMPT_IDX: idx, C.QUESTION: f"Q{idx}?", C.REFERENCE_THINK: f"ref think {idx}",
                               C.REFERENCE_SOLUTION: f"ref sol {idx}", C.SOURCE: f"{family}/{idx}",
                               C.GOLD_ANSWER: None, C.TESTS: None})
        return self

    def trace(self, idx: int, seed: int, think_tokens: int = 10, prior: float = -10.0, post: float = -10.0,
              answer_tokens: int = 5, answer: float = -5.0, text: str | None = None) -> RunBuilder:
        self.scores[seed].append({C.PROMPT_IDX: idx, C.SEED: seed, C.THINK_TEXT: text or f"think {idx}/{seed}",
                                  C.THINK_TOKENS: think_tokens, C.THINK_LOGP_PRIOR: prior,
                                  C.THINK_LOGP_POSTERIOR: post, C.ANSWER_TOKENS: answer_tokens,
                                  C.ANSWER_LOGP_PRIOR: answer})
        return self

    def rollout(self, idx: int, seed: int, rollout_idx: int, correct: bool | None, text: str | None = None,
                verify: bool = True) -> RunBuilder:
        self.rollouts[seed].append({C.PROMPT_IDX: idx, C.SEED: seed, C.ROLLOUT_IDX: rollout_idx,
                                    C.RESPONSE: text if text is not None else f"sol {idx}/{seed}/{rollout_idx}"})
        if verify:
            self.verified[seed].append({C.PROMPT_IDX: idx, C.SEED: seed, C.ROLLOUT_IDX: rollout_idx,
                                        C.CORRECT: correct, C.REASON: "ok" if correct else "wrong"})
        return self

    def rollouts_for(self, idx: int, seed: int, corrects: list[bool]) -> RunBuilder:
        for r, ok in enumerate(corrects):
            self.rollout(idx, seed, r, ok)
        return self

    def write(self, verified: bool = True) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.questions, schema=C.QUESTIONS_SCHEMA), self.root / C.QUESTIONS_FILE)
        for folder, rows, schema in ((C.SCORES_DIR, self.scores, C.SCORES_SCHEMA),
                                     (C.ROLLOUTS_DIR, self.rollouts, C.ROLLOUTS_SCHEMA),
                                     (C.VERIFIED_DIR, self.verified if verified else {}, C.VERIFIED_SCHEMA)):
            for seed, items in rows.items():
                (self.root / folder).mkdir(exist_ok=True)
                pq.write_table(pa.Table.from_pylist(items, schema=schema), self.root / folder / C.seed_file_name(seed))
        return self.root
