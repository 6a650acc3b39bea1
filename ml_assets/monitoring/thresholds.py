"""Every monitoring threshold in one place, with the measurement each one was chosen from.

Drift: a day's distribution of a feature (or of the scores) is compared with the champion's
reference by Evidently: the normed Wasserstein distance for numeric columns and PSI for
categorical ones decide; PSI and the KS p-value of numeric columns are reported next to them.
Against a 13-week reference, one day is always "far" (a day has one weather, one weekday, a few
hours of operations), so raw scores are calibrated twice:
- against the reference window itself: each of its days is scored against the reference, and
  a feature's largest such score is its normal day-to-day range (`window_max`);
- against the recent past: the median score of the same feature over the previous days scored
  against the same reference, which follows the slow seasonal drift (autumn days against a
  summer reference) without firing on it.
A column drifts when its score exceeds DRIFT_RATIO times the larger of the two. `python -m
ml_assets.cli bench monitoring` measures the false-alarm rate and the detection delay of these
settings on 2013 (see README).
"""

# Reference: a seeded sample of the champion's training window (computed once per version).
REFERENCE_SAMPLE_ROWS = 5_000  # Evidently scores a day against it in ~0.3 s (20,000: ~1 s)
REFERENCE_SEED = 0

# Calendar features are constant within a day: a single day always "drifts" on them.
NOT_MONITORED = ("weekday", "is_holiday", "days_to_holiday")

DRIFT_RATIO = 2.0  # a column drifts above this multiple of its calibrated band
RECENT_DAYS = 7  # days of earlier drift scores whose median follows seasonal drift
MIN_RECENT_DAYS = 3  # fewer earlier days: the band is the reference window's range alone
FEATURE_DRIFT_ERROR_COLUMNS = 2  # drifted features that make feature drift an ERROR (1 warns)
SCORE_DRIFT_ERROR_RATIO = DRIFT_RATIO  # the score distribution drifting is an ERROR

# Live performance: realised metrics once labels are complete, against the model's own evaluation.
ROLLING_DAYS = 7
MAX_RELATIVE_ROC_AUC_DROP = 0.05  # degraded: rolling ROC AUC more than 5 % below the evaluation's
MIN_LABELLED_ROWS = 500  # fewer labelled rows in the rolling window: no verdict

# Retraining requested by the sensor: not more often than this, one request per week and reason.
RETRAIN_COOLDOWN_DAYS = 3
