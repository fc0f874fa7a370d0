"""stsam_refiner: ST-SAM refiner built on segment-anything modules (adapters, dense/sparse prompts, alignment, HR head)."""
