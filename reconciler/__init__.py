"""reconciler: Terraform-style plan/apply for LoRA training and generation on Novita.ai.

The package reads as the pipeline: manifest -> desired -> (state, novita) -> plan -> render -> apply;
cli adapts it to the command line; sim is a Novita simulator that shares no code with the client.
"""

__version__ = "0.1.0"
