"""Generic data quality: row-level validation with quarantine, quality gates, profiles."""
