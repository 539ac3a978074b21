"""The catalogue of the frozen evaluation networks shipped with vastbench."""

from vastbench.assets import ASSETS, AssetSpec, register_asset

if "face-capture" not in ASSETS:
    register_asset(AssetSpec(
        name="face-capture", filename="face_capture_v1.pt", shipped=True,
        sha256="62c1efe7b3eaf3013eb623d74d1957d95ae34fcabd1ee0ee62ef7a44a7f942fb",
        description="face capture CNN: SynthTalk frames -> expression (11), pose (6), 68 landmarks, face presence",
        recipe="reproduce it with `python -m vastbench.evalnets.train_evalnets face_capture`"))

if "style-net" not in ASSETS:
    register_asset(AssetSpec(
        name="style-net", filename="style_net_v1.pt", shipped=True,
        sha256="782a32529a62c3e9c750a61c22a22097286de581686df768c12d7dc01670a2bc",
        description="independent style embedding network (1-D conv, attention pooling) + style-parameter ridge",
        recipe="reproduce it with `python -m vastbench.evalnets.train_evalnets style_net`"))

if "syncnet-synthtalk" not in ASSETS:
    register_asset(AssetSpec(
        name="syncnet-synthtalk", filename="syncnet_synthtalk_v1.pt", shipped=True,
        sha256="38a5bdaf8323b6f24be167c594a97e5ed2acf95c75fb2940fa64727add64a2df",
        description="SynthTalk SyncNet: syncnet_python's network trained on SynthTalk quick ground truth "
                    "(LSE-D/LSE-C when the official syncnet_v2.model is absent; not comparable with published LSE)",
        recipe="reproduce it with `vastbench assets train syncnet` (about 50 min on one CPU thread)"))
