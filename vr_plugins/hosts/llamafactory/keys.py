"""Names the LLaMA-Factory adapter adds to LLaMA-Factory's data flow, defined once."""

#: recipe (YAML) keys added to LLaMA-Factory's FinetuningArguments
NORMALIZER_KEY = "constant_loss_normalizer"
WEIGHTS_KEY = "use_sample_weights"
#: the registered loss (``register_losses``) used with the normaliser; the default is the built-in one
LOSS_KEY = "vr_loss"
DEFAULT_LOSS = "constant_normalizer"
RECIPE_KEYS = (NORMALIZER_KEY, WEIGHTS_KEY, LOSS_KEY)
#: ``constant_loss_normalizer: auto``: C computed inside the training process from its own dataset
AUTO_NORMALIZER = "auto"
#: attribute set on FinetuningArguments after parsing: the run's DataArguments (the trainer hook reads
#: cutoff_len, template, packing and the dataset names from it for the auto normaliser's record)
DATA_ARGS_ATTR = "_vr_data_args"
#: written into output_dir by the trainer hook when C is computed in-process (the vr-tools normalizer JSON)
NORMALIZER_FILE = "vr_normalizer.json"

#: attribute set on DataArguments after parsing, read by the converters and processors
DATA_WEIGHTS_FLAG = "vr_use_sample_weights"
#: attribute set on DatasetAttr: the raw ``columns`` mapping of the dataset_info.json entry
DATASET_COLUMNS_ATTR = "vr_columns"

#: aligned-dataset column (after the converter): the example weight
ALIGNED_WEIGHT = "_vr_weight"
#: processed-dataset columns: the weight of a plain example, the weights of a packed row's segments
EXAMPLE_WEIGHT = "vr_weight"
SEGMENT_WEIGHTS = "vr_segment_weights"
#: batch key (collator -> trainer): float32 [batch, seq] aligned with ``labels``
TOKEN_WEIGHTS = "vr_token_weights"

#: marker attribute set on every patched LLaMA-Factory object
PATCHED = "__vr_patched__"
