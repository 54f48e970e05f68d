"""Gateway nodes: iptables command builders and parsers for the runner's port forwards."""
