"""Training: the reference trainer (the specification), the batched engine, what a run is, optimizers, schedules, tuning, resume and cost."""
