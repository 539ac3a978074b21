"""A Wav2Lip-style lip-sync baseline (Prajwal et al., ACM MM 2020), trained on the benchmark's own data.

Modules: ``audio`` (log-mel windows), ``model`` (config, sync expert, generator, discriminator),
``data`` (clips in memory, samplers), ``train`` (expert, then generator; checkpoints), ``infer``
(reference video + audio -> frames), ``generator`` (the registered ``wav2lip_style`` system),
``sanity`` (the README's frame grid and numbers).  See README.md.
"""
