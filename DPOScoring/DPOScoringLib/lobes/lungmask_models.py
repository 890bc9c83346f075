"""One lungmask model per process, reused across cases (``dpo-score batch`` workers).

``lungmask_backend.run_lungmask`` builds a new ``LMInferer`` (both networks read from disk and moved
to the device) for every case. ``inferer(**arguments)`` returns the model built earlier in this
process with the same arguments (weight files, device) instead. Until ``run_lungmask`` calls it
directly, ``reuse_models_in_this_process()`` makes ``lungmask.LMInferer`` itself return the cached
model in the calling process; batch workers call it, Slicer and ``dpo-score run`` never do.
"""

from __future__ import annotations

import threading

_LOCK = threading.Lock()
_MODELS: dict = {}
_STATS = {"built": 0, "reused": 0}


def inferer(factory=None, **arguments):
    """The ``LMInferer(**arguments)`` of this process, built on first use (``factory``: the class)."""
    if factory is None:
        from lungmask import LMInferer as factory
    key = (getattr(factory, "__qualname__", str(factory)), tuple(sorted(arguments.items())))
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = factory(**arguments)
            _STATS["built"] += 1
        else:
            _STATS["reused"] += 1
    return model


def stats() -> dict:
    """How many models this process built and how often one was reused."""
    return dict(_STATS)


def reuse_models_in_this_process(module=None) -> None:
    """Makes ``module.LMInferer`` (default: the installed ``lungmask``) hand out cached models."""
    if module is None:
        import lungmask as module
    original = module.LMInferer
    if getattr(original, "_dpo_cached", False):
        return

    def cached(**arguments):
        return inferer(original, **arguments)

    cached._dpo_cached = True
    module.LMInferer = cached
