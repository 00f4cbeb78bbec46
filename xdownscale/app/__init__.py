"""The applications: the ``xdownscale`` command line, its YAML jobs and the Markdown report."""
