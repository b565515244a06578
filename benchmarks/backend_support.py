"""What a benchmark can run on a backend other than the embedded one, and the note that says so."""

from __future__ import annotations

from typing import Any

from bitmark import attacks

# attacks that use the embedded models (its tokenizer, generator or the separately trained autoencoder)
MODEL_BOUND = ("tokenizer", "generator", "autoencoder")


def needs_embedded_models(spec: str) -> bool:
    """Whether any attack of a spec ("jpeg:50+crop:0.7") runs the embedded models (regeneration, white-box)."""
    names = [part.split(":")[0] for part in spec.split("+")]
    return any(set(MODEL_BOUND) & set(getattr(attacks.REGISTRY.get(n), "options", ())) for n in names)


def backend_specs(specs: list[str], backend: Any) -> tuple[list[str], list[str]]:
    """(specs that run on this backend, specs left out). The embedded backend runs them all."""
    if backend.kind == "embedded":
        return list(specs), []
    return [s for s in specs if not needs_embedded_models(s)], [s for s in specs if needs_embedded_models(s)]


def backend_note(backend: Any, not_run: list[str], cfg: Any) -> str:
    """The head of a summary for a non-embedded backend: what was sampled, and what did not run and why."""
    lines = [f"**Backend: {backend.description}.**", ""]
    if not_run:
        lines.append(f"Not run on this backend (they need the embedded tokenizer, generator or autoencoder): "
                     f"{', '.join(not_run)}.")
    lines += ["No quality rows (the frozen classifier knows only the embedded 32² domain) and no post-hoc baselines; "
              "negatives are clean samples of two independent draws (no real image set for this generator).", "", ""]
    return "\n".join(lines)
