"""dfstream on a Ray cluster: ``dfstream scan --ray`` and ``dfstream SOURCES --ray``.

* ``connect``: import Ray (an optional extra: ``pip install 'dfstream[ray]'``) and join a
  cluster; a missing Ray or an address nobody answers is one line and exit code 3;
* ``scan``: the scan ``Executor`` built from Ray actors, one per GPU or per group of CPU cores;
* ``live``: live streams analysed by actors placed on cluster nodes (Ray resources or node
  labels), their events flowing back to the driver's sinks, restarted elsewhere when a node
  is lost;
* ``placement``: the ``--ray-place`` rules that say which node a stream should run on.

Ray is imported only here, and only when ``--ray`` is given: ``import dfstream`` and every
other command work without it. How to run a real cluster: ``docs/scale-out.md``.
"""

from __future__ import annotations
