"""Observing the process: what a run records about where and how it ran.

One module per section (environment, installs, code, command, seeds, entropy, determinism) and
`sections.capture_all`, which runs them all at init; plus the console tee, the system-metrics
sampler, the notebook watch, the import hook, redaction and the capture report.

This file imports nothing: `import reprolog` goes through `importhook` without paying for the
sections, which load when the first run captures them.
"""
