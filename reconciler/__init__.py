"""reconciler: Terraform-style plan/apply for LoRA training and generation on Novita.ai.

The package reads as the pipeline: manifest -> desired -> (state, novita) -> plan -> render -> apply;
cli adapts it to the command line; sim is a Novita simulator that shares no code with the client.
"""

import sys

__version__ = "0.1.0"

# httpx imports its own command-line tool (`httpx._main`: rich, pygments and click's parts) whenever those are
# installed, and falls back to a stub when that import fails. reconciler never runs it: refusing the import
# saves about a third of httpx's import time on every command that talks to Novita.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
