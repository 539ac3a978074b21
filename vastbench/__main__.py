"""``python -m vastbench`` (also what ``torchrun -m vastbench`` runs)."""

from vastbench.cli.main import main

if __name__ == "__main__":
    main()
