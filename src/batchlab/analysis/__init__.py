"""Analysis of the run tables: targets, steps to target and the critical batch size, resampling, claims and their verdicts."""
