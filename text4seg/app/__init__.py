"""The application layer: the pipeline (MLLM -> descriptor -> refiner), its refiner registry, batch
evaluation, the CLI, the web demo and the embedded default model. It sits on top: nothing below
imports it."""
