"""Names a config may use for models, activations and skip forms, importable without torch.

Snakemake validates the config and plans every job from these on each start, and each cluster
job re-parses the Snakefile; importing torch there would cost seconds per job. The registries
that build the modules (`lth.models`, `lth.models.activations`, `lth.models.skip`) refuse a
name missing here, and tests/test_models.py checks that both sides agree. Dataset names come
from `lth.data.sources.SOURCES`, mask sources from `lth.mask_registry.MASK_SOURCES`: torch-free too.
"""

MODELS = ("mobilenet", "resnet18", "resnet34", "vgg16")
ACTIVATIONS = ("relu", "swish", "mish")
SKIP_FORMS = ("none", "conv1x1", "identity")
