"""Built-in pipelines: ``syslog``, ``mail``, ``apache`` and ``sshd``, one TOML file each (package
data). They are read by :mod:`indexer.pipeline_config`."""
