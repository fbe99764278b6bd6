"""The officer's review: reports, sign-off, users, corrections, calibration, export and summaries."""
