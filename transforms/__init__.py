"""instructmix stages: one module per stage, pure kernels beside thin Beam wrappers."""
