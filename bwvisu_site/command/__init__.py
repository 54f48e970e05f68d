"""Command nodes: ``bwvisu_slurm_as`` (installed as ``bwvisu-slurm-as``), its sudoers rule and configuration."""
