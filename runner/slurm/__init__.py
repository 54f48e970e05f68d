"""Slurm: its command lines and their parsers (:mod:`.cli`), hostlist syntax (:mod:`.hostlist`), and the command
nodes with failover that run them (:mod:`.cluster`, the production :class:`~runner.slurm.cluster.Scheduler`)."""
