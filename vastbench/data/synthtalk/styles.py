"""Speaking styles: parameter vectors that change *how* a person talks.

A style is shared across identities (any face can speak in any style), so style
and identity are disentangled.  Two styles are held out of training for the
zero-shot split ``test_unseen_style``.  The parameters act in
:mod:`vastbench.data.synthtalk.animate`:

- ``mouth_amp``  scales jaw opening of every viseme
- ``smile``      constant smile bias; ``asym`` moves it to one side (-1 right .. +1 left)
- ``round_gain`` / ``press_gain`` scale lip rounding and lip pressing
- ``brow_gain``  brow raise tied to vocal emphasis (energy/pitch peaks)
- ``frown``      constant brow-frown bias
- ``cheek``      cheek raise that follows the smile
- ``blink_rate`` blinks per second
- ``head_amp`` / ``head_rate`` amplitude (rad) and frequency (Hz) of head motion;
  ``nod`` extra pitch nod on emphasis
- ``tempo``      coarticulation time constant (s): larger = lazier, smoother articulation
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from vastbench.errors import VastbenchError


@dataclass(frozen=True)
class Style:
    name: str
    mouth_amp: float = 1.0
    smile: float = 0.05
    asym: float = 0.0
    round_gain: float = 1.0
    press_gain: float = 1.0
    brow_gain: float = 0.2
    frown: float = 0.0
    cheek: float = 0.2
    blink_rate: float = 0.25
    head_amp: float = 0.03
    head_rate: float = 0.35
    nod: float = 0.0
    tempo: float = 0.035

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls) if f.name != "name")

    def to_vector(self) -> np.ndarray:
        return np.array([getattr(self, k) for k in self.param_names()], np.float32)

    def to_dict(self) -> dict:
        return asdict(self)


# The catalogue.  Spread on purpose so that 3-second clips are identifiable, and
# overlapping on some axes so that no single statistic gives the style away.
STYLES: dict[str, Style] = {s.name: s for s in [
    Style("neutral"),
    Style("cheerful", mouth_amp=1.1, smile=0.55, brow_gain=0.5, cheek=0.7, blink_rate=0.3, head_amp=0.05, head_rate=0.5),
    Style("emphatic", mouth_amp=1.4, brow_gain=1.1, nod=0.09, head_amp=0.04, head_rate=0.4, tempo=0.025),
    Style("reserved", mouth_amp=0.55, smile=0.0, round_gain=0.7, brow_gain=0.05, blink_rate=0.15, head_amp=0.012,
          head_rate=0.2, tempo=0.05),
    Style("nervous", mouth_amp=0.8, frown=0.3, press_gain=1.4, blink_rate=0.9, head_amp=0.035, head_rate=1.2,
          brow_gain=0.3),
    Style("stern", mouth_amp=0.9, smile=0.0, frown=0.65, press_gain=1.5, brow_gain=0.0, cheek=0.0, head_amp=0.02,
          head_rate=0.25, blink_rate=0.12),
    Style("smirk", mouth_amp=0.85, smile=0.4, asym=0.9, cheek=0.3, brow_gain=0.3, head_amp=0.03),
    Style("animated", mouth_amp=1.3, smile=0.25, brow_gain=0.8, head_amp=0.09, head_rate=0.8, nod=0.04, tempo=0.02,
          blink_rate=0.4),
    # Held out of training (test_unseen_style).
    Style("dreamy", mouth_amp=0.7, smile=0.2, tempo=0.07, head_amp=0.05, head_rate=0.2, blink_rate=0.1,
          brow_gain=0.25, round_gain=1.3),
    Style("skeptical", mouth_amp=0.95, smile=0.25, asym=-0.9, frown=0.35, brow_gain=0.6, press_gain=1.2,
          head_amp=0.025, head_rate=0.6, nod=0.03),
]}
UNSEEN_STYLES = ("dreamy", "skeptical")
SEEN_STYLES = tuple(s for s in STYLES if s not in UNSEEN_STYLES)


def get_style(name: str) -> Style:
    if name not in STYLES:
        from vastbench.registry import did_you_mean

        raise VastbenchError(f"unknown speaking style '{name}'{did_you_mean(name, STYLES)}")
    return STYLES[name]
