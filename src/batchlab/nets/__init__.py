"""Networks: the models compared across batch sizes, their per-sample objectives and the contrastive loss."""
