"""The write side: `Run` and `init`, process hooks, rank writers, the integrations' `RunOwner`,
`seed_everything`, autolog and the launcher of `reprolog run`.

Imports the fingerprint, capture and storage layers; never the read side (`_store`) beside it.
Inside, bottom up: `_hooks` (process and start hooks), `_status` (the status rule), `_facts`
(record keeping), `_job` (seats of launched jobs), `_services`, `_publishing` (publish_to=),
`_run` (`Run`, `init`, the live runs), then `_lifecycle`, `_rank`, `_seed`, `_owner`, `_launch`,
which use them.
"""

# Registers the start hook that installs the process hooks ending every run truly, whoever
# imports the run layer first (the facade does too, for `active_run`).
from reprolog._run import _lifecycle as _lifecycle
