"""What makes many small jobs cheap: warm start, study-wide jobs over per-cell caches, GPU slots, the memory allocator."""
