"""Names a config may use for models, activations, skip forms and mask sources, importable without torch.

Snakemake validates the config and plans every job from these on each start, and each cluster
job re-parses the Snakefile; importing torch there would cost seconds per job. The registries
that build the modules (`lth.models`, `lth.models.activations`, `lth.models.skip`) refuse a
name missing here, and tests/test_models.py checks that both sides agree. Dataset names come
from `lth.data.sources.SOURCES`, which is torch-free too.
"""

MODELS = ("mobilenet", "resnet18", "resnet34", "vgg16")
ACTIVATIONS = ("relu", "swish", "mish")
SKIP_FORMS = ("none", "conv1x1", "identity")
# Where a mask comes from (`lth prune --method`; lth/mask_sources.py for all but magnitude).
MASK_SOURCES = ("magnitude", "random", "snip", "grasp", "synflow", "file")
