"""A simulated Slurm cluster that speaks SSH, Slurm's CLI and iptables, cheap enough for thousands of jobs."""
