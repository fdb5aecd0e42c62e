"""Which layers sound as one voice: grouping a model's layers by its structure.

Framework-free: the adapters (:mod:`auralize.torch`, :mod:`auralize.keras`,
:mod:`auralize.lightning` through torch) give the ordered names of the modules
that own trainable parameters (and optionally their kinds, e.g. the class name
``"Embedding"``); :func:`group_layers` says which group each belongs to.  A
group's gradient norm is the true L2 norm of all its parameters together
(``sqrt`` of the sum of the squared per-parameter norms), so grouping changes
how many voices there are, never what a norm means.

Automatic grouping (``groups="auto"``, the default):

1. A layer inside a repeated block gets the block's name: the first dotted
   component that is an integer, under a prefix that holds at least two such
   indices (``transformer.h.3.attn.c_attn`` -> ``transformer.h.3``;
   ``model.layers.7.mlp.up_proj`` -> ``model.layers.7``; ResNet's
   ``layer2.1.conv1`` -> ``layer2.1``).
2. Consecutive embedding layers (kind containing ``"Embedding"``, or a last
   name component such as ``wte``/``wpe``/``embed_tokens``) form one group
   (``transformer.wte+wpe``); every other layer is its own group (a small model
   keeps one voice per layer, as the gradient seed had).
3. If that makes more than ``max_groups`` (24) groups, consecutive blocks of the
   same container merge into spans of equal size (``transformer.h.0-2``), the
   smallest span that fits; if the model still has too many groups (hundreds of
   loose layers), consecutive groups merge into ``max_groups`` even spans.

So a GPT-2 of 12 blocks has 14 voices (embeddings, 12 blocks, final norm; the LM
head is tied to the embedding and owns nothing), one of 48 blocks has 18
(blocks in spans of three), a ResNet-50 has 19 (stem conv and norm, 16
bottleneck blocks, the classifier).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Callable, Sequence

from auralize.errors import AuralizeError

__all__ = ["MAX_GROUPS", "group_layers"]

#: Default upper bound on the number of gradient voices.
MAX_GROUPS = 24

_EMBEDDING_TAILS = ("wte", "wpe", "embed", "embeddings", "embed_tokens", "embed_positions",
                    "word_embeddings", "position_embeddings", "token_type_embeddings",
                    "tok_embeddings", "shared")


def group_layers(names: Sequence[str], groups=None, *, kinds: Sequence[str] | None = None,
                 max_groups: int = MAX_GROUPS) -> list[str]:
    """The group name of each layer, in the layers' order.

    Parameters
    ----------
    names : sequence of str
        Layers (modules owning trainable parameters), in model order, by
        qualified dotted name.
    groups : None, "auto", "layers", list of str, or callable, optional
        ``None``/``"auto"``: by structure (module docstring).  ``"layers"``: one
        group per layer (the gradient seed's one tone per layer).  A list of
        names or glob patterns: a layer joins the first entry that matches its
        name or a dotted prefix of it (``"transformer.h.*"``, ``"encoder"``),
        the group is named by the entry; layers matching none form ``"other"``.
        A callable: ``name -> group name``.
    kinds : sequence of str, optional
        Each layer's kind (a class name such as ``"Embedding"``); helps to find
        embeddings.
    max_groups : int
        Upper bound of the automatic grouping (default 24).

    Returns
    -------
    list of str
        One group name per layer; groups appear in order of their first layer.

    Raises
    ------
    AuralizeError
        A bad ``groups`` argument, or a callable that does not return a string.
    """
    names = list(names)
    if groups is None or (isinstance(groups, str) and groups == "auto"):
        return _auto(names, list(kinds) if kinds is not None else [""] * len(names),
                     int(max_groups))
    if isinstance(groups, str) and groups == "layers":
        return names
    if callable(groups):
        return [_call(groups, n) for n in names]
    if isinstance(groups, (list, tuple)) and all(isinstance(g, str) for g in groups):
        if not groups:
            raise AuralizeError("groups= is an empty list: give names or glob patterns "
                                "(e.g. ['transformer.h.*']), 'auto' or 'layers'")
        return [_first_match(groups, n) for n in names]
    raise AuralizeError(f"groups must be 'auto', 'layers', a list of names/glob patterns or a "
                        f"callable name -> group, not {type(groups).__name__}")


def _call(fn: Callable, name: str) -> str:
    try:
        out = fn(name)
    except Exception as exc:  # noqa: BLE001 - the user's callable: say which name broke it
        raise AuralizeError(f"the groups= callable failed on layer {name!r}: {exc}") from None
    if not isinstance(out, str) or not out:
        raise AuralizeError(f"the groups= callable must return a non-empty group name (str) for "
                            f"each layer; for {name!r} it returned {out!r}")
    return out


def _first_match(patterns: Sequence[str], name: str) -> str:
    prefixes = _prefixes(name)
    for pattern in patterns:
        if any(fnmatch.fnmatchcase(p, pattern) for p in prefixes):
            return pattern
    return "other"


def _prefixes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


# -- automatic grouping -------------------------------------------------------------
def _block_of(names: list[str]) -> list[tuple[str, str, int] | None]:
    """(container, block name, index) of each layer inside a repeated block, else None."""
    parts = [n.split(".") for n in names]
    indices: dict[str, set[str]] = {}
    for p in parts:
        for k, part in enumerate(p):
            if part.isdigit():
                indices.setdefault(".".join(p[:k]), set()).add(part)
    out: list[tuple[str, str, int] | None] = []
    for p in parts:
        found = None
        for k, part in enumerate(p):
            prefix = ".".join(p[:k])
            if part.isdigit() and len(indices.get(prefix, ())) >= 2:
                found = (prefix, ".".join(p[:k + 1]), int(part))
                break
        out.append(found)
    return out


def _is_embedding(name: str, kind: str) -> bool:
    tail = name.rsplit(".", 1)[-1].lower()
    return "embedding" in kind.lower() or tail in _EMBEDDING_TAILS


def _merged_name(members: list[str]) -> str:
    if len(members) == 1:
        return members[0]
    split = [m.split(".") for m in members]
    common = 0
    while all(len(s) > common + 1 and s[common] == split[0][common] for s in split):
        common += 1
    prefix = ".".join(split[0][:common])
    tails = [".".join(s[common:]) for s in split]
    joined = "+".join(tails) if len(tails) <= 3 else f"{tails[0]}..{tails[-1]}"
    return f"{prefix}.{joined}" if prefix else joined


def _auto(names: list[str], kinds: list[str], max_groups: int) -> list[str]:
    if max_groups < 1:
        raise AuralizeError(f"max_groups must be at least 1, got {max_groups}")
    blocks = _block_of(names)
    # units: (group name, container or None, block index, member layer positions)
    units: list[list] = []
    for i, (name, kind, block) in enumerate(zip(names, kinds, blocks)):
        if block is not None:
            container, block_name, index = block
            if units and units[-1][0] == block_name:
                units[-1][3].append(i)
            else:
                units.append([block_name, container, index, [i]])
        elif _is_embedding(name, kind) and units and units[-1][1] == "(embedding)":
            units[-1][3].append(i)
        else:
            units.append([name, "(embedding)" if _is_embedding(name, kind) else None, 0, [i]])
    for unit in units:
        if unit[1] == "(embedding)":
            unit[0] = _merged_name([names[i] for i in unit[3]])
    if len(units) > max_groups:
        units = _span_blocks(units, max_groups)
    if len(units) > max_groups:
        units = _even_spans(units, names, max_groups)
    out = [""] * len(names)
    for unit in units:
        for i in unit[3]:
            out[i] = unit[0]
    return out


def _span_blocks(units: list[list], max_groups: int) -> list[list]:
    """Merge consecutive blocks of one container into spans of ``k`` blocks, smallest k that fits."""
    runs: list[list[list]] = []     # maximal runs of consecutive units of one container
    for unit in units:
        container = unit[1] if unit[1] not in (None, "(embedding)") else None
        if container is not None and runs and runs[-1][0][1] == container:
            runs[-1].append(unit)
        else:
            runs.append([unit])
    block_runs = [r for r in runs if r[0][1] not in (None, "(embedding)")]
    if not block_runs:
        return units
    loose = len(runs) - len(block_runs)
    budget = max_groups - loose
    longest = max(len(r) for r in block_runs)
    k = 1
    while k < longest and sum(math.ceil(len(r) / k) for r in block_runs) > max(budget, 1):
        k += 1
    out: list[list] = []
    for run in runs:
        if run[0][1] in (None, "(embedding)"):
            out.extend(run)
            continue
        for start in range(0, len(run), k):
            chunk = run[start:start + k]
            first, last = chunk[0], chunk[-1]
            name = first[0] if len(chunk) == 1 else f"{first[1]}.{first[2]}-{last[2]}" \
                if first[1] else f"{first[2]}-{last[2]}"
            out.append([name, first[1], first[2], [i for u in chunk for i in u[3]]])
    return out


def _even_spans(units: list[list], names: list[str], max_groups: int) -> list[list]:
    """Consecutive units merged into ``max_groups`` spans of (nearly) equal count."""
    n = len(units)
    out = []
    for g in range(max_groups):
        chunk = units[g * n // max_groups:(g + 1) * n // max_groups]
        if not chunk:
            continue
        members = [i for u in chunk for i in u[3]]
        name = chunk[0][0] if len(chunk) == 1 else f"{chunk[0][0]}..{chunk[-1][0]}"
        out.append([name, None, 0, members])
    return out
