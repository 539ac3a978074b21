"""The ``neutral`` system: speech -> expressions with no style input, rendered by VAST's renderer.

This is the "neutral avatar" VAST sets out to vivify: the expression model sees
only the driving speech (PPG), never a style prompt.  It is VAST's decoder
trained with a constant zero style code (the ``no_style`` configuration of
``vastbench.vast.config``), so against VAST it measures exactly what the style
path adds; the renderer is the same cached model the VAST systems use.
"""

from __future__ import annotations

from vastbench.vast.generator import VastGenerator


class Neutral(VastGenerator):
    name = "neutral"
    version = "1"
    defaults = {k: v for k, v in VastGenerator.defaults.items() if k not in ("variant", "sample", "renderer_ppg")}

    def __init__(self, label, ctx, **args):
        super().__init__(label, ctx, **args)
        self.args.update(variant="no_style", renderer_ppg=True, sample=False)
