"""Thin Dagster wiring per layer.

The graph uses Dagster's beta and preview APIs on purpose (partition mappings with nonexistent
upstream partitions, partitioned checks, freshness checks): whatever imports it stays quiet.
"""

import warnings

import dagster as dg

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
warnings.filterwarnings("ignore", category=dg.SupersessionWarning)
