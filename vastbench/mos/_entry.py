"""The script ``streamlit run`` executes (``vastbench mos serve`` starts it)."""

from vastbench.mos.app import main

main()
