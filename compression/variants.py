"""The one list of variants Shelfcast builds every night."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Variant:
    """How a variant is made: an LSTM of `units` units (trained from scratch when it has no
    `base_variant` with the same units), optionally pruned to `sparsity` from its base, and
    exported with float32 or int8 weights."""

    name: str
    technique: str  # baseline | sizing | pruning | quantization | distillation | hybrid
    units: int
    base_variant: str | None = None
    sparsity: float | None = None
    weights: str = "float32"  # float32 | int8

    @property
    def trained_from_scratch(self) -> bool:
        return self.technique in ("baseline", "sizing")

    @property
    def has_own_weights(self) -> bool:
        """False for an int8 variant: it exports its base's float weights, with no training."""
        return self.weights == "float32"


BASELINE = "lstm64"

VARIANTS: tuple[Variant, ...] = (
    Variant("lstm64", "baseline", 64),
    Variant("lstm32", "sizing", 32, base_variant=BASELINE),
    Variant("lstm16", "sizing", 16, base_variant=BASELINE),
    Variant("pruned30", "pruning", 64, base_variant=BASELINE, sparsity=0.3),
    Variant("pruned50", "pruning", 64, base_variant=BASELINE, sparsity=0.5),
    Variant("pruned70", "pruning", 64, base_variant=BASELINE, sparsity=0.7),
    Variant("int8", "quantization", 64, base_variant=BASELINE, weights="int8"),
    Variant("lstm32_int8", "hybrid", 32, base_variant="lstm32", weights="int8"),
    Variant("lstm16_int8", "hybrid", 16, base_variant="lstm16", weights="int8"),
    Variant("pruned50_int8", "hybrid", 64, base_variant="pruned50", sparsity=0.5, weights="int8"),
    # distillation: a small LSTM taught by the night's LSTM-64 (not in the article)
    Variant("lstm16_kd", "distillation", 16, base_variant=BASELINE),
    Variant("lstm16_kd_int8", "hybrid", 16, base_variant="lstm16_kd", weights="int8"),
)

VARIANTS_BY_NAME = {variant.name: variant for variant in VARIANTS}


def source_model(variant: Variant) -> str:
    """The variant whose Keras weights this one exports: itself, or for int8 its base."""
    return variant.base_variant if variant.weights == "int8" else variant.name  # type: ignore[return-value]


def weight_carriers(name: str, variants: Sequence[Variant] = VARIANTS) -> tuple[str, ...]:
    """The variants whose artifacts carry the weights of `name`: itself, and every variant
    pruned or quantized from it (not a distilled student: it learns weights of its own)."""
    carriers = [name]
    for variant in variants:  # bases come before what is derived from them
        if variant.base_variant in carriers and variant.technique in ("pruning", "quantization",
                                                                      "hybrid"):
            carriers.append(variant.name)
    return tuple(carriers)


def build_order(variants: Sequence[Variant] = VARIANTS) -> list[Variant]:
    """Variants sorted so each comes after the one it is derived from (bases added)."""
    needed: dict[str, Variant] = {}

    def visit(variant: Variant) -> None:
        base = variant.base_variant
        if base and not variant.trained_from_scratch and base not in needed:
            visit(VARIANTS_BY_NAME[base])
        needed.setdefault(variant.name, variant)

    for variant in variants:
        visit(variant)
    return list(needed.values())
