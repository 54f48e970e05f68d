"""bwVisu-compatible job-launching middleware: REST API, Slurm over SSH, gateway forwards, state in etcd."""
