"""`reconciler apply` with the client's images-per-minute throttle lifted, for building converged benchmark states.

The simulator used for setup runs with `--ipm-txt2img 0` (no limit), but the applier throttles to Novita's
documented 20 images/minute on its own, so 1,000 generations would take 50 minutes of waiting that measures
nothing. This runs the real CLI in-process with that client-side limit set to 0 as well; everything else
(planning, uploads, trainings, generations, downloads, state saves) is the product's code path unchanged.

    python bench/unthrottled_apply.py apply --auto-approve ...
"""

from __future__ import annotations

import sys

from reconciler import apply

apply.DEFAULT_IPM.update(txt2img=0, img2img=0)

from reconciler.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.argv[0] = "reconciler"
    main()
