"""``astromesh ingest``: a real pipeline folder, idempotent re-runs, a clear unknown-name error."""

from __future__ import annotations

from typer.testing import CliRunner

from astromesh.cli_rag import app


def test_ingest_command(tmp_path):
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "kb.rag.yaml").write_text(
        f"""apiVersion: astromesh/v1
kind: RAGPipeline
metadata: {{name: kb}}
spec:
  embeddings: {{provider: onnx, model: all-MiniLM-L6-v2}}
  vector_store: {{backend: faiss, path: {tmp_path / "kb.faiss"}}}
"""
    )
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\nalpha")
    (docs / "b.txt").write_text("beta")
    runner = CliRunner()
    first = runner.invoke(app, ["kb", str(docs), "--agents", str(agents)])
    assert first.exit_code == 0, first.output
    assert "2 indexed" in first.output and "2 chunk(s) written" in first.output
    second = runner.invoke(app, ["kb", str(docs), "--agents", str(agents)])
    assert "2 unchanged" in second.output and "0 chunk(s) written" in second.output
    unknown = runner.invoke(app, ["nope", str(docs), "--agents", str(agents)])
    assert unknown.exit_code == 2 and "known pipelines: kb" in unknown.output
