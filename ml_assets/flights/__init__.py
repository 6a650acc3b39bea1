"""The default use case: flight disruption prediction on nycflights13.

Everything specific to flights lives in this package (raw contracts, cleaning rules, features,
label), so a team points the graph at its own data by replacing these modules.
"""
