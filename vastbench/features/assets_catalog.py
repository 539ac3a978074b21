"""The catalogue of frozen assets used by the speech front end and the metrics."""

from vastbench.assets import ASSETS, AssetSpec, register_asset

if "ppg-synthtalk" not in ASSETS:
    register_asset(AssetSpec(
        name="ppg-synthtalk", filename="ppg_synthtalk_v1.pt", shipped=True,
        sha256="f4aef146e5309a35b460534013fdcb67bec7cd267251c4865ca5dedd340ef681",
        description="built-in PPG recognizer (TDNN on log-mel), trained on SynthTalk train speakers",
        recipe="reproduce it with `vastbench assets train ppg`"))
