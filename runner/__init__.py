"""bwVisu-compatible job-launching middleware: REST API, Slurm over SSH, gateway forwards, state in etcd."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bwvisu-runner")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
