"""What a site installs on its cluster so the runner's account can do its work and nothing more.

Not part of the runner at run time: ``command/`` and ``gateway/`` each hold a sudoers file, a helper that runs as
root through it (one Python 3 file, standard library only) and the helper's configuration. ``README.md`` says what
goes where. The simulator imports the helpers' validation code, so it refuses exactly what they refuse.
"""
