"""Built-in ``vr-tools`` subcommands. Targets are imported only when the subcommand runs."""

from vr_plugins.hookspecs import hookimpl
from vr_plugins.types import Command

BUILTIN_COMMANDS = (
    ("prepare", "Write RUN/questions.parquet from a Bespoke-Stratos-style or generic dataset."),
    ("sample", "Sample K thinking traces per question from the posterior q."),
    ("score", "Score traces with the prior pi_0 and the posterior q on identical token ids."),
    ("rollout", "Sample answer continuations from pi_0 given (x, z_k)."),
    ("verify", "Grade rollouts with the verifier registered for each source family."),
    ("build", "Build the final training dataset with an estimator (gml, acc, snis, rft, ...)."),
    ("normalizer", "Compute the constant loss normaliser C for a recipe and dataset."),
    ("report", "Summarise a run directory: tables and plots."),
    ("pipeline", "Run the whole pipeline from one config."),
    ("demo", "Run the pipeline on the embedded tiny model and bundled data (CPU)."),
    ("evaluate", "Evaluate a model on a vr_* task on this machine (transformers; CPU-capable)."),
    ("tiny-model", "Build the embedded tiny model locally (random weights, no hub access)."),
    ("reference-data", "Register the reference-trace training datasets of a run directory for LLaMA-Factory."),
    ("eval-summary", "Collect SkyThought result folders into one table."),
    ("paths", "Print where the installed recipes and eval task files are."),
    ("plugins", "List registered plugins and what each registers."),
    ("study", "Run the micro-scale study (synthetic task, every arm, several seeds) on CPU."),
)


@hookimpl
def register_commands(register):
    for name, help_text in BUILTIN_COMMANDS:
        module = name.replace("-", "_")
        register(Command(name=name, target=f"vr_tools.{module}:command", help=help_text))
