"""A real containerised Slurm cluster (controller, compute, command, gateway nodes, etcd) for end-to-end tests."""
