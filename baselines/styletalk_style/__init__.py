"""StyleTalk-style baseline: deterministic style code, style-aware adaptive decoder, VAST's renderer."""
