"""ml_assets: a machine-learning pipeline as a Dagster asset graph."""

import warnings

import dagster as dg

# The graph uses Dagster's beta and preview APIs on purpose (partition mappings with nonexistent
# upstream partitions, partitioned checks, freshness checks): every entry point stays quiet.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.SupersessionWarning)
