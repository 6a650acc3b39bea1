"""Quality thresholds for every processed table, in one place.

Chosen from the 2013 data with headroom: on the worst days (the 8-9 February blizzard) over
half of the flights were cancelled, so departure/arrival columns may be mostly null on a day,
while the schedule columns never are (they are required: a null there is quarantined).
"""

from ml_assets.quality.gates import QualityGate

QUALITY_GATES = {
    "flights": QualityGate(
        max_quarantine_rate=0.01,
        max_null_rate={"tailnum": 0.35, "dep_delay": 0.80, "arr_delay": 0.80},
        min_rows_per_day=100,  # 2013: 634 to 1,014 flights a day
        # the lowest real 2013 day is Thanksgiving, 64 % of the Thursdays before it
        min_weekday_share=0.6,
    ),
    "weather": QualityGate(
        max_quarantine_rate=0.02,
        max_null_rate={"temp": 0.10, "visib": 0.10, "wind_speed": 0.20, "pressure": 0.80},
        min_rows_per_day=24,  # 3 airports x 24 hours; 2013 has at least 57 a day
        min_weekday_share=0.6,  # the lowest real 2013 day with observations has 79 %
        short_day_blocks=False,  # 2013-12-31 has no observations: features see missing weather
    ),
    "planes": QualityGate(max_quarantine_rate=0.01, max_null_rate={"seats": 0.01}),
    "airports": QualityGate(max_quarantine_rate=0.01),
    "airlines": QualityGate(max_quarantine_rate=0.0),
}
