"""Gateway nodes: ``bwvisu_forward`` (installed as ``bwvisu-forward``), its sudoers rule and configuration."""
