"""Chains: ``spec.chain``, the agents an agent fires when it finishes (upstream's semantics).

- :mod:`.graph`: the expanded chain (``GET /v1/agents/{name}/chain``) and the checks made when
  the agent is built (every chained agent exists, no cycle, at most ``max_depth`` deep).
- :mod:`.run`: running the links of a finished run, each a child run, inside ``finalize``
  (so on Step Functions in the finalize task, as agent tools' children run in ``act``).
"""

from astromesh.chains.graph import ChainError, chain_graph, check_chain
from astromesh.chains.run import run_chain

__all__ = ["ChainError", "chain_graph", "check_chain", "run_chain"]
