"""The Astromesh CDK app: one module per stack under ``stacks/``, settings in ``config.py``.

``cdk.json`` runs ``infra/app.py``; tests import :func:`infra.app.build_app` instead, so the
package must import from the repository root.
"""
