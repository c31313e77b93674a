"""Measurements on trained runs: per-example gradients and the noise scale, geometry of the minimum, downstream SVMs."""
