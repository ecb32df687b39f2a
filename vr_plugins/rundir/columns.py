"""The run-directory contract: file locations and column names, defined once (docs/run_directory.md).

Steps may add columns; they must not rename these. Every step imports the names from here.
"""

from __future__ import annotations

import pyarrow as pa

# --- column names ---------------------------------------------------------------------------------
PROMPT_IDX = "prompt_idx"
QUESTION = "question"
REFERENCE_THINK = "reference_think"
REFERENCE_SOLUTION = "reference_solution"
SOURCE = "source"
GOLD_ANSWER = "gold_answer"
TESTS = "tests"
SEED = "seed"
POSTERIOR_RESPONSE = "posterior_response"
THINK_TEXT = "think_text"
THINK_TOKENS = "think_tokens"
THINK_LOGP_PRIOR = "think_logp_prior"
THINK_LOGP_POSTERIOR = "think_logp_posterior"
ANSWER_TOKENS = "answer_tokens"
ANSWER_LOGP_PRIOR = "answer_logp_prior"
ROLLOUT_IDX = "rollout_idx"
RESPONSE = "response"
CORRECT = "correct"
REASON = "reason"
ESTIMATOR = "estimator"
WEIGHT = "weight"
AVERAGE_CORRECTNESS = "average_correctness"
# extra columns of the data steps (issue 4; additive, not part of the minimal contract)
#: scores: the trace was cut so the sequence fits ``--max-tokens``; think_* cover the scored part only
TRUNCATED = "truncated"
#: scores: the posterior response contained the end-of-thought marker (False: whole response used as trace)
THINK_COMPLETE = "think_complete"
#: scores (``--per-token``): per-token log-probs, list<float32>
THINK_TOKEN_LOGPS_PRIOR = "think_token_logps_prior"
THINK_TOKEN_LOGPS_POSTERIOR = "think_token_logps_posterior"
ANSWER_TOKEN_LOGPS_PRIOR = "answer_token_logps_prior"
#: posterior / rollouts: generation ended by itself (end-of-sequence or stop string), not by the token limit
FINISHED = "finished"
#: posterior / rollouts: number of generated tokens
GENERATED_TOKENS = "generated_tokens"
#: questions (``prepare``): a code question left without unit tests (verify cannot grade it, so Acc falls back)
NO_TESTS = "no_tests"

# --- layout ---------------------------------------------------------------------------------------
QUESTIONS_FILE = "questions.parquet"
MANIFEST_FILE = "manifest.json"
POSTERIOR_DIR = "posterior"
SCORES_DIR = "scores"
ROLLOUTS_DIR = "rollouts"
VERIFIED_DIR = "verified"
DATASETS_DIR = "datasets"
DATASET_INFO_FILE = "dataset_info.json"

#: dataset ``source`` values besides the seed k of the selected trace
SOURCE_FALLBACK = -1
SOURCE_ORIGINAL = -2


def seed_file_name(seed: int) -> str:
    return f"seed-{seed}.parquet"


def source_family(source: str) -> str:
    """``"numina/12"`` -> ``"numina"`` (the key verifiers and fallback rules use)."""
    return source.split("/", 1)[0]


# --- schemas (the contract columns; extra columns are allowed) -----------------------------------
QUESTIONS_SCHEMA = pa.schema(
    [
        (PROMPT_IDX, pa.int64()),
        (QUESTION, pa.string()),
        (REFERENCE_THINK, pa.string()),
        (REFERENCE_SOLUTION, pa.string()),
        (SOURCE, pa.string()),
        (GOLD_ANSWER, pa.string()),
        (TESTS, pa.string()),
    ]
)
#: what ``prepare`` writes: the contract columns + the no-tests flag
PREPARED_QUESTIONS_SCHEMA = QUESTIONS_SCHEMA.append(pa.field(NO_TESTS, pa.bool_()))
POSTERIOR_SCHEMA = pa.schema([(PROMPT_IDX, pa.int64()), (SEED, pa.int64()), (POSTERIOR_RESPONSE, pa.string())])
SCORES_SCHEMA = pa.schema(
    [
        (PROMPT_IDX, pa.int64()),
        (SEED, pa.int64()),
        (THINK_TEXT, pa.string()),
        (THINK_TOKENS, pa.int64()),
        (THINK_LOGP_PRIOR, pa.float64()),
        (THINK_LOGP_POSTERIOR, pa.float64()),
        (ANSWER_TOKENS, pa.int64()),
        (ANSWER_LOGP_PRIOR, pa.float64()),
    ]
)
ROLLOUTS_SCHEMA = pa.schema(
    [(PROMPT_IDX, pa.int64()), (SEED, pa.int64()), (ROLLOUT_IDX, pa.int64()), (RESPONSE, pa.string())]
)
VERIFIED_SCHEMA = pa.schema(
    [
        (PROMPT_IDX, pa.int64()),
        (SEED, pa.int64()),
        (ROLLOUT_IDX, pa.int64()),
        (CORRECT, pa.bool_()),
        (REASON, pa.string()),
    ]
)
DATASET_SCHEMA = pa.schema(
    [
        (PROMPT_IDX, pa.int64()),
        (QUESTION, pa.string()),
        (RESPONSE, pa.string()),
        (SOURCE, pa.int64()),
        (ESTIMATOR, pa.string()),
        (WEIGHT, pa.float64()),
        (AVERAGE_CORRECTNESS, pa.float64()),
    ]
)
